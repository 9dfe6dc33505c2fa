"""A paused queue in a worker that starts: left out before its consumer starts, and a pause or
resume made while it started followed once it is ready; a resume reaches only the workers
started for the queue. (With real workers: tests/scheduler/services/test_control_integration.py.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery.app.amqp import Queues
from kombu import Queue

from config.celery import app
from scheduler import services
from scheduler.models import QueuePause
from scheduler.observability.worker_heartbeats import (
    forget_worker,
    record_worker_queues,
    record_worker_seen,
)
from scheduler.worker import queue_pauses

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_worker_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_pauses, "_started_for", None)


def _worker_set_up(names: list[str]) -> Any:
    queues = Queues([Queue(name, routing_key=name) for name in ("default", "llm", "agents")])
    queues.select(names)
    return SimpleNamespace(app=SimpleNamespace(amqp=SimpleNamespace(queues=queues)))


class Consumer:
    def __init__(self, consuming: list[str]) -> None:
        self.task_consumer = SimpleNamespace(queues=[SimpleNamespace(name=n) for n in consuming])
        self.calls: list[tuple[str, str]] = []

    def cancel_task_queue(self, name: str) -> None:
        self.calls.append(("cancel", name))

    def add_task_queue(self, name: str) -> None:
        self.calls.append(("add", name))


def test_a_worker_leaves_paused_queues_out_before_it_consumes():
    QueuePause.objects.create(queue="llm")
    QueuePause.objects.create(queue="agents")  # paused, but not one of this worker's
    worker = _worker_set_up(["default", "llm"])

    queue_pauses._leave_paused_queues_out(sender="w@host", instance=worker)

    assert set(worker.app.amqp.queues.consume_from) == {"default"}
    assert queue_pauses.queues_started_for() == {"default", "llm"}


def test_a_worker_with_every_queue_paused_consumes_none():
    QueuePause.objects.create(queue="default")
    worker = _worker_set_up(["default"])

    queue_pauses._leave_paused_queues_out(sender="w@host", instance=worker)

    assert dict(worker.app.amqp.queues.consume_from) == {}


def test_once_ready_it_follows_a_pause_and_a_resume_made_while_it_started():
    queue_pauses._leave_paused_queues_out(
        sender="w@host", instance=_worker_set_up(["default", "llm", "agents"])
    )
    # Meanwhile: llm paused, and agents... consumed by nobody here yet (resumed meanwhile).
    QueuePause.objects.create(queue="llm")
    consumer = Consumer(["default", "llm"])

    queue_pauses._follow_pauses_made_while_starting(sender=consumer)

    assert consumer.calls == [("cancel", "llm"), ("add", "agents")]


def test_outside_a_worker_set_up_by_celery_nothing_is_touched():
    consumer = Consumer(["default"])
    QueuePause.objects.create(queue="default")

    queue_pauses._follow_pauses_made_while_starting(sender=consumer)

    assert consumer.calls == []


def test_a_resume_reaches_only_the_workers_started_for_the_queue(monkeypatch):
    told: list[dict[str, Any]] = []

    def add_consumer(queue: str, **options: Any) -> list[dict[str, Any]]:
        told.append({"queue": queue, **options})
        return [{"w-llm": {"ok": ""}}]

    monkeypatch.setattr(app.control, "add_consumer", add_consumer)
    for host, queues in (("w-llm", ["default", "llm"]), ("w-default", ["default"])):
        record_worker_seen(host)
        record_worker_queues(host, queues)
    try:
        QueuePause.objects.create(queue="llm")

        control = services.queue_resume(queue="llm")
    finally:
        for host in ("w-llm", "w-default"):
            forget_worker(host)

    assert [call["destination"] for call in told] == [["w-llm"]]
    assert told[0]["limit"] == 1
    assert (control.changed, control.workers) == (True, ["w-llm"])
    assert not QueuePause.objects.exists()
