"""A burst goes to the broker pipelined (scheduler/beat/scheduler.py's `_send_batch`): the
messages of a batch are made by Celery as `apply_async` makes them, and their LPUSHes (and the
PUBLISHes of their task-sent events) go to Redis in one round trip; a pipeline that fails leaves
its runs unrecorded, published again a second later under the same task ids.

These tests publish to the real Redis of the test run (no worker consumes here, except in the
last test's module-scoped `celery_worker`); each empties the queues it used.
"""

from __future__ import annotations

import json
import threading
from base64 import b64decode
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery.signals import before_task_publish
from django.conf import settings
from django_celery_beat.models import PeriodicTask
from kombu import Producer
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel

from config.celery import app
from config.queues import QUEUES
from scheduler.beat import scheduler as beat
from scheduler.beat.scheduler import DatabaseScheduler, evaluate
from scheduler.core.redis_connection import get_redis
from scheduler.models import TaskEvent
from scheduler.observability.queues import queue_messages_purge
from tests.factories import make_schedule
from tests.processes import wait_for
from tests.scheduler.beat.helpers import later

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_leader", "empty_queues")]

_PRIORITY_SEP = "\x06\x16"


@pytest.fixture
def empty_queues() -> Iterator[None]:
    for name in QUEUES:
        queue_messages_purge(name)
    yield
    for name in QUEUES:
        queue_messages_purge(name)


def _queued(queue: str = "default") -> list[dict[str, Any]]:
    """The messages waiting in `queue` (every priority list), as kombu stored them."""
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
    client: Any = get_redis()
    found: list[dict[str, Any]] = []
    for step in PRIORITY_STEPS:
        key = f"{prefix}{queue}{_PRIORITY_SEP}{step}" if step else f"{prefix}{queue}"
        # LPUSH, consumed from the right: the oldest last.
        found += [json.loads(raw) for raw in reversed(client.lrange(key, 0, -1))]
    return found


def _ids(messages: list[dict[str, Any]]) -> list[str]:
    return [message["headers"]["id"] for message in messages]


class RedisCommands:
    """The Redis commands this thread sends: each pipeline's, and those sent one by one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pipelines: list[list[str]] = []
        self.direct: list[str] = []
        self.fail_pipelines: set[int] = set()  # which publishing pipelines fail (1 = first)
        self.lose_answer = False  # a failing pipeline reaches Redis, its answer does not
        self._thread = threading.get_ident()
        real_execute = redis.client.Pipeline.execute
        real_command = redis.client.Redis.execute_command
        commands = self

        def execute(pipeline: Any, *args: Any, **kwargs: Any) -> Any:
            names = [str(command[0][0]).upper() for command in pipeline.command_stack]
            if threading.get_ident() != commands._thread or "LPUSH" not in names:
                return real_execute(pipeline, *args, **kwargs)
            commands.pipelines.append(names)
            if len(commands.pipelines) in commands.fail_pipelines:
                if commands.lose_answer:
                    real_execute(pipeline, *args, **kwargs)
                else:
                    pipeline.reset()
                raise redis.exceptions.ConnectionError("Redis went away")
            return real_execute(pipeline, *args, **kwargs)

        def execute_command(client: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == commands._thread:
                commands.direct.append(str(args[0]).upper())
            return real_command(client, *args, **kwargs)

        monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
        monkeypatch.setattr(redis.client.Redis, "execute_command", execute_command)

    def published_directly(self) -> list[str]:
        return [name for name in self.direct if name in ("LPUSH", "PUBLISH")]


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> RedisCommands:
    return RedisCommands(monkeypatch)


def _due(count: int, *, prefix: str = "burst") -> list[str]:
    names = [f"{prefix} {n:02d}" for n in range(count)]
    for name in names:
        make_schedule(name=name, schedule="every 1 hour")
    PeriodicTask.objects.filter(name__in=names).update(
        last_run_at=datetime.now(UTC) - timedelta(minutes=90)
    )
    return names


def _run_ids(scheduler: DatabaseScheduler) -> dict[str, str]:
    """Periodic task name -> the task id of its next run, as any leader names it."""
    return {entry.name: beat.run_task_id(entry) for entry in scheduler.entries.values()}


def _counts(names: list[str]) -> set[int]:
    return set(
        PeriodicTask.objects.filter(name__in=names).values_list("total_run_count", flat=True)
    )


def test_a_burst_goes_out_in_one_pipeline_per_batch(monkeypatch, commands):
    monkeypatch.setattr(beat, "BATCH", 10)
    names = _due(25)
    scheduler = DatabaseScheduler(app=app, lazy=True)
    scheduler._load_all()
    expected = _run_ids(scheduler)

    scheduler.tick_once()

    # One round trip per batch of 10: each message's LPUSH and its task-sent event's PUBLISH.
    assert [pipeline.count("LPUSH") for pipeline in commands.pipelines] == [10, 10, 5]
    assert [pipeline.count("PUBLISH") for pipeline in commands.pipelines] == [10, 10, 5]
    assert commands.published_directly() == []
    assert scheduler.stats.published == 25
    assert sorted(_ids(_queued())) == sorted(expected.values())
    assert sorted(scheduler.stats.published_ids) == sorted(expected.values())
    assert _counts(names) == {1}


def test_a_pipelined_message_is_the_one_apply_async_sends_alone(monkeypatch, commands):
    """The same runs published through the pipeline and one by one (a broker kombu does not
    batch for): the same messages, but for the moment each went out."""
    names = _due(3)
    PeriodicTask.objects.filter(name=names[1]).update(priority=5, expire_seconds=600)
    PeriodicTask.objects.filter(name=names[2]).update(
        headers=json.dumps({"object": "agent:7"}), args="[]", kwargs="{}"
    )
    scheduler = DatabaseScheduler(app=app, lazy=True)
    assert scheduler.leadership.hold()  # a batch goes out only from the leader (fenced)
    scheduler._load_all()
    moment = datetime.now(UTC)
    batch = [(entry, evaluate(entry, moment, app.timezone)) for entry in scheduler.entries.values()]
    signalled: list[dict[str, Any]] = []

    def receiver(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
        signalled.append(dict(headers or {}))

    before_task_publish.connect(receiver, weak=False)
    try:
        with app.producer_or_acquire() as producer:
            done, failed, lost_lead = scheduler._send_batch(batch, moment, producer)
        assert (len(done), failed, lost_lead) == (3, [], False)
        pipelined = _queued()
        assert len(commands.pipelines) == 1
        for name in QUEUES:
            queue_messages_purge(name)

        monkeypatch.setattr(RedisChannel, "supports_batch_publish", False)
        with app.producer_or_acquire() as producer:
            done, failed, lost_lead = scheduler._send_batch(batch, moment, producer)
        assert (len(done), failed, lost_lead) == (3, [], False)
        alone = _queued()
        assert len(commands.pipelines) == 1  # none more: published one by one
    finally:
        before_task_publish.disconnect(receiver)

    assert [message["headers"]["id"] for message in pipelined] == _ids(alone)
    assert len(signalled) == 6  # before_task_publish, as for every message
    by_name = {entry.name: entry for entry, _ in batch}
    for made, sent in zip(pipelined, alone, strict=True):
        headers = made["headers"]
        entry = by_name[headers["periodic_task_name"]]
        assert headers["task"] == "scheduler.ping"
        assert headers["id"] == beat.run_task_id(entry)
        assert headers["scheduled_for"]
        assert headers["published_at"]
        assert headers["timelimit"] == [QUEUES["default"].hard_limit, QUEUES["default"].soft_limit]
        assert made["properties"]["delivery_info"] == {"exchange": "", "routing_key": "default"}
        varying = {"published_at", "expires"}
        assert {k: v for k, v in headers.items() if k not in varying} == {
            k: v for k, v in sent["headers"].items() if k not in varying
        }
        assert set(headers) == set(sent["headers"])
        assert made["properties"].keys() == sent["properties"].keys()
        assert {k: v for k, v in made["properties"].items() if k != "delivery_tag"} == {
            k: v for k, v in sent["properties"].items() if k != "delivery_tag"
        }
        assert b64decode(made["body"]) == b64decode(sent["body"])
    prioritised = next(m for m in pipelined if m["headers"]["periodic_task_name"] == names[1])
    assert prioritised["properties"]["priority"] == 5
    assert prioritised["headers"]["expires"]
    owned = next(m for m in pipelined if m["headers"]["periodic_task_name"] == names[2])
    assert owned["headers"]["object"] == "agent:7"


def test_a_failed_pipeline_is_not_recorded_and_goes_out_a_second_later(commands):
    names = _due(5)
    scheduler = DatabaseScheduler(app=app, lazy=True)
    scheduler._load_all()
    expected = _run_ids(scheduler)
    commands.fail_pipelines = {1}

    scheduler.tick_once()

    assert scheduler.stats.published == 0
    assert _queued() == []
    assert _counts(names) == {0}
    failures = TaskEvent.objects.filter(type="task.failed", periodic_task_name__in=names)
    assert failures.count() == 5
    assert all("could not be published: ConnectionError" in f.message for f in failures)
    assert _run_ids(scheduler) == expected  # tried again under these ids

    with later(beat.PUBLISH_RETRY_AFTER + 0.5):
        scheduler.tick_once()

    assert scheduler.stats.published == 5
    assert sorted(_ids(_queued())) == sorted(expected.values())
    assert _counts(names) == {1}


def test_a_failure_mid_batch_records_what_went_out_before_it(monkeypatch, commands):
    # Pipelines of 4 messages within a batch; the second fails: the first 4 runs are recorded,
    # the 6 others (in it, and not tried after it) go out a second later.
    monkeypatch.setattr(beat, "PIPELINE_MESSAGES", 4)
    names = _due(10)
    scheduler = DatabaseScheduler(app=app, lazy=True)
    scheduler._load_all()
    expected = _run_ids(scheduler)
    commands.fail_pipelines = {2}

    scheduler.tick_once()

    assert [pipeline.count("LPUSH") for pipeline in commands.pipelines] == [4, 4]
    first = _ids(_queued())
    assert len(first) == 4
    assert scheduler.stats.published == 4
    assert sorted(scheduler.stats.published_ids) == sorted(first)
    recorded = set(
        PeriodicTask.objects.filter(name__in=names, total_run_count=1).values_list(
            "name", flat=True
        )
    )
    assert {expected[name] for name in recorded} == set(first)
    assert TaskEvent.objects.filter(type="task.failed", periodic_task_name__in=names).count() == 4

    with later(beat.PUBLISH_RETRY_AFTER + 0.5):
        scheduler.tick_once()

    assert scheduler.stats.published == 6
    assert sorted(_ids(_queued())) == sorted(expected.values())
    assert _counts(names) == {1}


def test_a_pipeline_whose_answer_was_lost_is_published_again_under_the_same_ids(commands):
    # Redis took the messages, but beat cannot know: the runs are not recorded and go out again,
    # under the same ids, as after a leader died between publishing and recording (the workers
    # drop the second copy: scheduler/worker/deduplication.py).
    names = _due(3)
    scheduler = DatabaseScheduler(app=app, lazy=True)
    scheduler._load_all()
    expected = sorted(_run_ids(scheduler).values())
    commands.fail_pipelines, commands.lose_answer = {1}, True

    scheduler.tick_once()
    assert sorted(_ids(_queued())) == expected
    assert _counts(names) == {0}

    with later(beat.PUBLISH_RETRY_AFTER + 0.5):
        scheduler.tick_once()

    assert sorted(_ids(_queued())) == sorted(expected * 2)
    assert _counts(names) == {1}


@pytest.mark.parametrize(
    "no_batching",
    [
        # A broker kombu does not batch for.
        lambda monkeypatch: monkeypatch.setattr(RedisChannel, "supports_batch_publish", False),
        # A kombu that cannot batch (before 5.7).
        lambda monkeypatch: monkeypatch.delattr(Producer, "batch"),
    ],
    ids=["broker", "kombu"],
)
def test_without_batching_each_message_goes_out_at_once(monkeypatch, commands, no_batching):
    no_batching(monkeypatch)
    names = _due(4)
    scheduler = DatabaseScheduler(app=app, lazy=True)

    scheduler.tick_once()

    assert commands.pipelines == []
    assert commands.published_directly().count("LPUSH") == 4
    assert scheduler.stats.published == 4
    assert len(_queued()) == 4
    assert _counts(names) == {1}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_every_run_of_a_pipelined_burst(celery_worker, commands):
    names = _due(20, prefix="worked")
    scheduler = DatabaseScheduler(app=app, lazy=True)
    try:
        scheduler.tick_once()
    finally:
        scheduler.close()

    assert [pipeline.count("LPUSH") for pipeline in commands.pipelines] == [20]
    ids = scheduler.stats.published_ids
    assert len(ids) == 20
    for task_id in ids:
        assert app.AsyncResult(task_id).get(timeout=60)["pong"] is True
    ran = TaskEvent.objects.filter(type="task.succeeded", task_id__in=ids)
    # The worker writes its events' rows in batches.
    wait_for(lambda: ran.count() == 20, timeout=30, what="the worker to store the runs' events")
    assert set(ran.values_list("periodic_task_name", flat=True)) == set(names)
