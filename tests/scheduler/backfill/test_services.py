"""The backfill services: checking a request, the row and its audit entry, and publishing its
runs with their ids and headers (messages captured, not sent)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask, SolarSchedule
from django_celery_results.models import TaskResult

from scheduler.core.redis_connection import get_redis
from scheduler.models import AuditEntry, Backfill, Source, TaskEvent
from scheduler.services import (
    BackfillNotFound,
    ScheduleError,
    ScheduleNotFound,
    backfill_plan,
    backfill_publish,
    backfill_run_id,
    backfill_start,
)
from scheduler.services import backfills as backfill_module
from scheduler.worker.deduplication import claim_key
from tests.factories import make_schedule, user_with

from .conftest import at, daily_at_nine, every_minute

pytestmark = pytest.mark.django_db


def _nothing_written() -> None:
    assert not Backfill.objects.exists()
    assert not AuditEntry.objects.filter(changes__has_key="backfill").exists()


# --- Checking a request ----------------------------------------------------------------------


def test_it_refuses_an_unknown_schedule():
    with pytest.raises(ScheduleNotFound, match="no periodic task named 'ghost'"):
        backfill_start(name="ghost", start="2025-01-01", end="2025-01-02")
    _nothing_written()


def test_it_refuses_an_end_before_the_start():
    daily_at_nine()

    with pytest.raises(ScheduleError) as caught:
        backfill_start(name="nightly report", start="2025-01-10", end="2025-01-09")

    assert list(caught.value.errors) == ["to"]
    assert "is before from (2025-01-10T00:00:00+00:00)" in caught.value.errors["to"][0]
    _nothing_written()


def test_it_refuses_a_range_over_ten_thousand_runs_with_its_count():
    every_minute(last_run_at=at("2025-01-01 00:00"))

    with pytest.raises(ScheduleError) as caught:
        # 12,345 minutes, both ends included.
        backfill_start(
            name="minutely",
            start=at("2025-01-01 00:00"),
            end=at("2025-01-01 00:00") + timedelta(minutes=12_344),
        )

    assert caught.value.errors == {
        "to": ["the range holds 12,345 runs; at most 10,000: backfill a shorter range, or several"]
    }
    _nothing_written()


def test_it_takes_ten_thousand_runs():
    every_minute(last_run_at=at("2025-01-01 00:00"))

    plan = backfill_plan(
        name="minutely",
        start=at("2025-01-01 00:00"),
        end=at("2025-01-01 00:00") + timedelta(minutes=9_999),
    )

    assert plan.total == 10_000


def test_it_refuses_an_unknown_overlap_policy_and_bad_times_all_at_once():
    daily_at_nine()

    with pytest.raises(ScheduleError) as caught:
        backfill_start(name="nightly report", start="last tuesday", end="", overlap="queue")

    errors = caught.value.errors
    assert set(errors) == {"from", "to", "overlap"}
    assert "'last tuesday' is not an ISO 8601 date or time" in errors["from"][0]
    assert "a date or time is required" in errors["to"][0]
    assert errors["overlap"][0].startswith("'queue' is not one of allow, skip, buffer_one")
    _nothing_written()


def test_it_refuses_a_solar_schedule():
    solar = SolarSchedule.objects.create(event="sunrise", latitude=51.5, longitude=0)
    PeriodicTask.objects.create(name="dawn", task="scheduler.ping", solar=solar)

    with pytest.raises(ScheduleError) as caught:
        backfill_start(name="dawn", start="2025-01-01", end="2025-01-02")

    assert caught.value.errors == {
        "schedule": [
            "'dawn' runs on a solar schedule, whose times cannot be listed: it cannot be backfilled"
        ]
    }
    _nothing_written()


def test_it_refuses_a_task_outside_the_catalog():
    interval = IntervalSchedule.objects.create(every=1, period="hours")
    PeriodicTask.objects.create(name="legacy", task="os.system", interval=interval)

    with pytest.raises(ScheduleError) as caught:
        backfill_start(name="legacy", start="2025-01-01", end="2025-01-02")

    assert "not backfilled" in caught.value.errors["task"][0]
    _nothing_written()


def test_it_refuses_a_range_with_no_run_of_the_schedule():
    daily_at_nine()

    with pytest.raises(ScheduleError) as caught:
        backfill_start(name="nightly report", start="2025-01-10 10:00", end="2025-01-11 08:00")

    assert "nothing to backfill" in caught.value.errors["from"][0]
    _nothing_written()


def test_times_without_an_offset_are_in_the_schedules_zone():
    daily_at_nine(tz="America/New_York")

    local = backfill_plan(name="nightly report", start="2025-01-15", end="2025-01-15 09:00")
    with_offset = backfill_plan(
        name="nightly report", start="2025-01-15", end="2025-01-15T09:00+00:00"
    )

    assert [run.isoformat() for run in local.times] == ["2025-01-15T09:00:00-05:00"]
    assert local.start.isoformat() == "2025-01-15T00:00:00-05:00"
    assert with_offset.times == []


def test_a_plan_lists_its_runs_and_writes_nothing():
    daily_at_nine()

    plan = backfill_plan(name="nightly report", start="2025-01-01", end="2025-01-31 23:59")

    data = plan.as_dict(shown=2)
    assert data["total"] == 31
    assert data["overlap"] == "buffer_all"
    assert data["first"] == "2025-01-01T09:00:00+00:00"
    assert data["last"] == "2025-01-31T09:00:00+00:00"
    assert data["runs"] == ["2025-01-01T09:00:00+00:00", "2025-01-02T09:00:00+00:00"]
    _nothing_written()


# --- Starting one ----------------------------------------------------------------------------


def test_it_writes_the_row_and_the_audit_entry_and_queues_the_publisher_after_commit(
    sent, django_capture_on_commit_callbacks
):
    daily_at_nine()
    user = user_with("scheduler.run_tasks")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        backfill = backfill_start(
            name="nightly report",
            start="2025-01-01",
            end="2025-01-03 23:00",
            overlap="skip",
            actor=user,
            source=Source.API,
        )
    assert sent == []  # nothing leaves before the transaction commits
    for callback in callbacks:
        callback()

    row = Backfill.objects.get()
    assert (row.pk, row.total, row.published, row.existing) == (backfill.pk, 3, 0, 0)
    assert (row.overlap, row.status, row.source) == ("skip", "running", "api")
    assert row.requested_by == user
    assert row.periodic_task_name == "nightly report"
    entry = AuditEntry.objects.get(changes__has_key="backfill")
    assert (entry.action, entry.actor, entry.source) == ("backfilled", user, "api")
    assert entry.changes["backfill"][1].startswith(f"backfill {row.pk}: 3 runs from 2025-01-01")
    assert [(message.name, message.options["queue"]) for message in sent] == [
        ("scheduler.backfill", "maintenance")
    ]
    assert sent[0].options["kwargs"] == {"backfill_id": row.pk}


def test_a_broker_that_cannot_be_reached_fails_the_backfill(
    monkeypatch, django_capture_on_commit_callbacks
):
    from config.celery import app

    def refuse(*args, **kwargs):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(app, "send_task", refuse)
    daily_at_nine()

    with (
        pytest.raises(ConnectionError),
        django_capture_on_commit_callbacks(execute=True),
    ):
        backfill_start(name="nightly report", start="2025-01-01", end="2025-01-02")

    row = Backfill.objects.get()
    assert row.status == "failed"
    assert row.error == "could not be queued: ConnectionError: connection refused"


# --- Publishing its runs ---------------------------------------------------------------------


def _started(**fields) -> Backfill:
    fields = {"name": "nightly report", "start": "2025-01-01", "end": "2025-01-05 23:00", **fields}
    return backfill_start(**fields)


def test_it_publishes_each_run_with_its_id_and_headers(sent):
    periodic_task = daily_at_nine(params={})
    backfill = _started()

    backfill_publish(backfill_id=backfill.pk)

    days = [at(f"2025-01-0{day} 09:00") for day in range(1, 6)]
    assert [message.name for message in sent] == ["scheduler.ping"] * 5
    assert [message.task_id for message in sent] == [
        backfill_run_id(periodic_task.pk, due) for due in days
    ]
    headers = sent[0].headers
    assert headers["periodic_task_name"] == "nightly report"
    assert headers["scheduled_for"] == "2025-01-01T09:00:00.000000+00:00"
    assert headers["backfill_id"] == backfill.pk
    assert headers["overlap_policy"] == "buffer_all"
    assert headers["published_at"].endswith("+00:00")
    assert [message.headers["scheduled_for"][:10] for message in sent] == [
        f"2025-01-0{day}" for day in range(1, 6)
    ]
    assert sent[0].options["queue"] == "default"
    assert sent[0].options["kwargs"] == {}
    assert "expires" not in sent[0].options
    row = Backfill.objects.get()
    assert (row.status, row.total, row.published, row.existing) == ("done", 5, 5, 0)
    assert row.finished_at is not None


def test_the_ids_are_the_schedules_and_the_due_times():
    due = at("2025-01-01 09:00")

    assert backfill_run_id(7, due) == backfill_run_id(7, due.astimezone(at("2025-01-01").tzinfo))
    assert backfill_run_id(7, due) != backfill_run_id(8, due)
    assert backfill_run_id(7, due) != backfill_run_id(7, due + timedelta(microseconds=1))
    assert uuid.UUID(backfill_run_id(7, due)).version == 5


def test_a_second_backfill_of_the_same_range_publishes_nothing_it_made_before(sent):
    daily_at_nine()
    first = _started()
    backfill_publish(backfill_id=first.pk)
    first_ids = [message.task_id for message in sent]
    # The runs ran: their results are stored.
    for task_id in first_ids:
        TaskResult.objects.create(task_id=task_id, task_name="scheduler.ping", status="SUCCESS")
    sent.clear()

    second = _started(end="2025-01-07 23:00")  # two more days
    backfill_publish(backfill_id=second.pk)

    assert len(sent) == 2
    assert not {message.task_id for message in sent} & set(first_ids)
    row = Backfill.objects.get(pk=second.pk)
    assert (row.total, row.published, row.existing) == (7, 2, 5)
    again = _started()
    backfill_publish(backfill_id=again.pk)
    row = Backfill.objects.get(pk=again.pk)
    assert (row.total, row.published, row.existing, row.status) == (5, 0, 5, "done")


def test_runs_claimed_by_a_worker_or_still_queued_count_as_made_before(sent):
    periodic_task = daily_at_nine()
    claimed = backfill_run_id(periodic_task.pk, at("2025-01-01 09:00"))
    queued = backfill_run_id(periodic_task.pk, at("2025-01-02 09:00"))
    TaskEvent.objects.create(
        type="task.queued", task_id=queued, task_name="scheduler.ping", created_at=timezone.now()
    )
    backfill = _started()
    redis = get_redis()
    redis.set(claim_key(claimed, 0), "{}", ex=60)
    try:
        backfill_publish(backfill_id=backfill.pk)
    finally:
        redis.delete(claim_key(claimed, 0))

    assert {claimed, queued}.isdisjoint(message.task_id for message in sent)
    row = Backfill.objects.get()
    assert (row.published, row.existing) == (3, 2)


def test_its_progress_is_saved_and_sent_live_after_each_chunk(sent, monkeypatch):
    monkeypatch.setattr(backfill_module, "CHUNK", 2)
    daily_at_nine()
    backfill = _started()

    backfill_publish(backfill_id=backfill.pk)

    events = list(
        TaskEvent.objects.filter(type__startswith="backfill.")
        .order_by("id")
        .values("type", "object_type", "object_id", "payload")
    )
    assert [event["type"] for event in events] == [
        "backfill.progress",
        "backfill.progress",
        "backfill.progress",
        "backfill.finished",
    ]
    assert {(event["object_type"], event["object_id"]) for event in events} == {
        ("backfill", str(backfill.pk))
    }
    progress = [event["payload"]["data"]["published"] for event in events]
    assert progress == [2, 4, 5, 5]
    assert events[-1]["payload"]["data"]["status"] == "done"
    assert events[-1]["payload"]["data"]["message"] == (
        f"backfill {backfill.pk} of 'nightly report': 5/5 runs: done"
    )


def test_a_schedule_deleted_meanwhile_fails_the_backfill(sent):
    periodic_task = daily_at_nine()
    backfill = _started()
    periodic_task.delete()

    with pytest.raises(ScheduleError, match="was deleted"):
        backfill_publish(backfill_id=backfill.pk)

    row = Backfill.objects.get()
    assert row.status == "failed"
    assert "'nightly report' was deleted: no runs were made" in row.error
    assert sent == []
    assert TaskEvent.objects.filter(type="backfill.finished").exists()


def test_a_finished_backfill_is_not_published_again(sent):
    daily_at_nine()
    backfill = _started()
    backfill_publish(backfill_id=backfill.pk)
    sent.clear()

    backfill_publish(backfill_id=backfill.pk)  # a redelivered task

    assert sent == []


def test_an_unknown_backfill_is_not_found():
    with pytest.raises(BackfillNotFound, match="no backfill with id 404"):
        backfill_publish(backfill_id=404)


def test_without_a_broker_the_runs_are_made_in_the_caller(
    settings, django_capture_on_commit_callbacks
):
    settings.CELERY_ENABLED = False
    periodic_task = make_schedule(name="inline", schedule="0 9 * * *", task="scheduler.ping")

    with django_capture_on_commit_callbacks(execute=True):
        backfill = backfill_start(name="inline", start="2025-01-01", end="2025-01-02 23:00")

    row = Backfill.objects.get(pk=backfill.pk)
    assert (row.status, row.published) == ("done", 2)
    ids = {backfill_run_id(periodic_task.pk, at(f"2025-01-0{day} 09:00")) for day in (1, 2)}
    assert set(TaskResult.objects.values_list("task_id", flat=True)) >= ids
