"""How the publisher batches: starts linger, ends go out at once, rows are stored in batches."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers
from django.utils import timezone

from scheduler.live.publisher import LINGER, STAFF_GROUP, Publisher
from scheduler.models import TaskEvent

TIMEOUT = 5


@pytest.fixture
def listener():
    """A channel in the staff group, and a way to read what reaches it."""
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(STAFF_GROUP, channel)

    async def receive(count: int, timeout: float = TIMEOUT) -> list[dict]:
        return [
            (await asyncio.wait_for(layer.receive(channel), timeout))["event"] for _ in range(count)
        ]

    def read(count: int, timeout: float = TIMEOUT) -> list[dict]:
        return async_to_sync(receive)(count, timeout)

    yield read
    async_to_sync(layer.group_discard)(STAFF_GROUP, channel)


@pytest.fixture
def events():
    publisher = Publisher()
    yield publisher
    publisher.stop()


def _event(task_id: str, type_: str, state: str, **extra) -> dict:
    return {
        "type": type_,
        "task_id": task_id,
        "task_name": "tests.batching",
        "state": state,
        **extra,
    }


def test_inline_a_runs_end_is_sent_by_the_caller_with_its_start(events, listener):
    events.deliver_inline()
    task_id = str(uuid.uuid4())

    events.publish(_event(task_id, "task.started", "STARTED"))
    assert events.sent == 0  # the start waits for company
    events.publish(_event(task_id, "task.succeeded", "SUCCESS"))

    assert events.sent == 2  # sent before publish() returned, on this thread
    got = listener(2)
    assert [(e["task_id"], e["type"]) for e in got] == [
        (task_id, "task.started"),
        (task_id, "task.succeeded"),
    ]


def test_a_start_with_no_end_goes_out_after_lingering(events, listener):
    events.deliver_inline()
    task_id = str(uuid.uuid4())
    before = time.monotonic()

    events.publish(_event(task_id, "task.started", "STARTED"))

    [got] = listener(1)
    assert got["task_id"] == task_id
    assert time.monotonic() - before >= LINGER * 0.9


def test_in_the_background_an_end_goes_out_at_once_in_order(events, listener):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for task_id in ids:
        events.publish(_event(task_id, "task.queued", "PENDING"))
    events.publish(_event(ids[0], "task.succeeded", "SUCCESS"))

    got = listener(4)

    assert [e["task_id"] for e in got] == [*ids, ids[0]]
    assert [e["type"] for e in got][-1] == "task.succeeded"


def test_schedule_changes_do_not_linger(events, listener):
    before = time.monotonic()
    events.publish({"type": "schedule.updated", "periodic_task_name": "nightly", "state": ""})

    [got] = listener(1)
    assert got["type"] == "schedule.updated"
    assert events.flush(timeout=TIMEOUT)
    assert time.monotonic() - before < TIMEOUT


@pytest.mark.django_db(transaction=True)
def test_rows_are_stored_in_one_batch_and_at_the_latest_on_flush(events, listener):
    events.deliver_inline()
    task_id = str(uuid.uuid4())
    rows = [
        TaskEvent(
            type=type_,
            task_id=task_id,
            task_name="tests.batching",
            state=state,
            created_at=timezone.now(),
        )
        for type_, state in (("task.started", "STARTED"), ("task.succeeded", "SUCCESS"))
    ]
    for row in rows:
        events.publish(_event(task_id, row.type, row.state), row=row)
    listener(2)

    assert events.flush(timeout=TIMEOUT)

    stored = TaskEvent.objects.filter(task_id=task_id).order_by("id")
    assert [e.type for e in stored] == ["task.started", "task.succeeded"]


def test_stopping_sends_and_stores_what_is_held(events, listener):
    task_id = str(uuid.uuid4())
    events.publish(_event(task_id, "task.started", "STARTED"))

    events.stop()

    assert events.sent == 1
    assert listener(1)[0]["task_id"] == task_id


def test_only_calls_that_used_the_database_have_the_thread_look_after_its_connection(monkeypatch):
    module = sys.modules[Publisher.__module__]
    checks = []
    monkeypatch.setattr(module, "close_old_connections", lambda: checks.append(1))
    publisher = Publisher()
    try:
        publisher.call_later(0, lambda: False)  # a STARTED row whose run had ended: nothing
        assert publisher.flush(timeout=TIMEOUT)
        assert checks == []
        publisher.call_later(0, lambda: True)
        assert publisher.flush(timeout=TIMEOUT)
        assert checks
    finally:
        publisher.stop()
