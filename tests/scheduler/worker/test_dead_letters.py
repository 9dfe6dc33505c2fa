"""A run that failed its last retry is kept as a dead letter: once per task id, with what it was
called with, never failing the run, and only for catalog tasks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from config.celery import app as celery_app
from scheduler.core.masking import MASK
from scheduler.models import DeadLetter, TaskEvent
from scheduler.observability.metrics import MetricsBuffer
from scheduler.system.tasks import ping, send_notification
from scheduler.worker import receivers
from scheduler.worker.dead_letters import ERROR_MAX_LENGTH, dead_letter_keep
from tests.factories import event_payload_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def inline_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """apply() runs a task's retries inline (the test settings make errors propagate, which
    would raise the first Retry instead)."""
    monkeypatch.setattr(send_notification.app.conf, "task_eager_propagates", False)


@pytest.fixture
def worker_request() -> Iterator[Any]:
    """`scheduler.ping`, running as a worker runs a delivery of it: the request a worker gives
    it (headers as attributes, the queue in its delivery info, its retries so far)."""
    ping.push_request(
        id="run-1",
        retries=2,
        hostname="w1@host",
        delivery_info={"routing_key": "agents", "redelivered": False},
        periodic_task_name="nightly ping",
        scheduler_object="tournament:7",
        kwargs={"token": "s3cret", "n": 1},
    )
    try:
        yield ping
    finally:
        ping.pop_request()


@pytest.mark.usefixtures("inline_retries")
def test_it_keeps_a_run_that_failed_its_last_retry_once(receiver):
    receiver.status = 500
    called = {"subject": "Hi", "message": "there", "webhook_url": receiver.url}

    outcome = send_notification.apply(kwargs=called)

    assert outcome.failed()
    assert len(receiver.received) == 1 + 3  # the run and its three retries
    letter = DeadLetter.objects.get()
    assert letter.task_id == outcome.id
    assert letter.task_name == "scheduler.send_notification"
    assert letter.kwargs == called
    assert letter.error.startswith("NotificationError: ")
    assert "500" in letter.error
    assert letter.attempts == 4
    assert letter.queue == "webhooks"  # run in the caller: its catalog queue
    assert letter.status == DeadLetter.Status.OPEN
    assert letter.failed_at is not None
    event = TaskEvent.objects.get(type="task.dead_letter")
    assert (event.task_id, event.state, event.message) == (outcome.id, "FAILURE", letter.error)
    assert event.payload["dead_letter_id"] == letter.pk
    assert event.payload["status"] == "open"


def test_a_run_that_succeeds_or_retries_keeps_nothing():
    assert ping.apply().successful()

    assert not DeadLetter.objects.exists()


def test_it_reads_the_run_from_the_request_a_worker_gives_it(worker_request):
    receivers._keep_dead_letter(
        sender=worker_request,
        task_id="run-1",
        exception=ValueError("bad input"),
        kwargs={"token": "s3cret", "n": 1},
    )

    letter = DeadLetter.objects.get(task_id="run-1")
    assert letter.kwargs == {"token": "s3cret", "n": 1}  # as called: requeue needs them
    assert letter.error == "ValueError: bad input"
    assert letter.attempts == 3
    assert letter.queue == "agents"
    assert letter.periodic_task_name == "nightly ping"
    assert (letter.object_type, letter.object_id) == ("tournament", "7")
    event = TaskEvent.objects.get(type="task.dead_letter")
    assert (event.worker, event.object_type, event.object_id) == ("w1@host", "tournament", "7")


def test_a_failure_reported_outside_the_run_takes_what_the_signal_says():
    # A hard time limit is reported by the worker's main process: no request of the run.
    dead_letter_keep(ping, task_id="run-2", exception=TimeoutError("killed"), kwargs={"n": 2})

    letter = DeadLetter.objects.get(task_id="run-2")
    assert (letter.kwargs, letter.attempts, letter.queue) == ({"n": 2}, 1, "default")
    assert letter.periodic_task_name == ""


def test_the_same_task_id_failing_again_updates_its_row(worker_request):
    first = dead_letter_keep(worker_request, task_id="run-1", exception=ValueError("first"))
    assert first is not None
    DeadLetter.objects.filter(pk=first.pk).update(status=DeadLetter.Status.DISCARDED)

    again = dead_letter_keep(worker_request, task_id="run-1", exception=ValueError("second"))

    assert again is not None
    assert again.pk == first.pk
    letter = DeadLetter.objects.get()
    assert letter.error == "ValueError: second"
    assert letter.status == DeadLetter.Status.DISCARDED  # as staff left it
    events = TaskEvent.objects.filter(type="task.dead_letter").order_by("id")
    assert [event.payload["status"] for event in events] == ["open", "discarded"]


def test_the_error_is_kept_masked_and_bounded():
    dead_letter_keep(ping, task_id="run-3", exception=RuntimeError("api_key=abc123, " + "x" * 5000))

    error = DeadLetter.objects.get().error
    assert "abc123" not in error
    assert MASK in error
    assert len(error) == ERROR_MAX_LENGTH


def test_runs_of_tasks_outside_the_catalog_are_not_kept():
    outside = celery_app.tasks["celery.backend_cleanup"]

    assert dead_letter_keep(outside, task_id="run-4", exception=ValueError("x")) is None
    assert not DeadLetter.objects.exists()


def test_a_row_that_cannot_be_written_never_fails_the_run(monkeypatch, caplog):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(DeadLetter.objects, "bulk_create", broken)

    with caplog.at_level(logging.WARNING, logger="scheduler.worker.dead_letters"):
        kept = dead_letter_keep(ping, task_id="run-5", exception=ValueError("x"))

    assert kept is None
    assert "could not keep the dead letter of scheduler.ping[run-5]" in caplog.text
    assert not TaskEvent.objects.filter(type="task.dead_letter").exists()
    assert TaskEvent.objects.count() == 0  # and the test's transaction is still usable


def test_the_metrics_count_the_failure_once():
    metrics = MetricsBuffer()
    metrics.add(
        [
            event_payload_of(type=event_type, task_name="scheduler.ping", state="FAILURE")
            for event_type in ("task.failed", "task.dead_letter")
        ],
        delivered=True,
    )

    assert sum(metrics._tasks.values()) == 1
