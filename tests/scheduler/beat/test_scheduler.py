"""Our beat scheduler's ticks (scheduler/beat/scheduler.py): what is due is published, then recorded
under the id any leader gives it, in bursts and batches; disabled, expired and one-off tasks, start
times, the misfire policy after downtime, and rows naming a task outside the catalog.

Publishing is captured at `DatabaseScheduler._send` here (helpers.py's `Recording`); the
scheduler's change pickup is test_changes.py's, its leadership test_leadership.py's, and
test_beat_integration.py runs real beat processes against the real broker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask

from config.celery import app
from scheduler.beat import scheduler as beat
from scheduler.beat.scheduler import DatabaseScheduler, Entry
from scheduler.models import ScheduleOptions, TaskEvent
from tests.factories import make_schedule
from tests.scheduler.beat.helpers import (
    forget_beats,
    later,
    recording_scheduler,
    sent_names,
    set_last_run,
)

# `no_leader` (conftest.py): no leader lock or heartbeat of an earlier beat, before or after.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_leader")]


# --- Ticks -----------------------------------------------------------------------------------


def test_a_tick_publishes_what_is_due_and_records_the_run():
    make_schedule(name="due", schedule="every 5 minutes", params={})
    make_schedule(name="not due", schedule="every 5 minutes")
    last = datetime.now(UTC) - timedelta(minutes=6)
    set_last_run("due", last)
    set_last_run("not due", datetime.now(UTC) - timedelta(minutes=1))
    scheduler = recording_scheduler()

    scheduler.tick_once()

    assert sent_names(scheduler) == ["due"]
    row = PeriodicTask.objects.get(name="due")
    assert row.total_run_count == 1
    # The run is recorded at its due time (five minutes after the last), not when it went out:
    # an interval does not drift by beat's lag or a run's jitter.
    assert row.last_run_at == last + timedelta(minutes=5)
    assert scheduler.dues == [last + timedelta(minutes=5)]
    assert PeriodicTask.objects.get(name="not due").total_run_count == 0


def test_a_run_not_recorded_is_published_again_under_the_same_task_id(monkeypatch):
    make_schedule(name="due", schedule="every 5 minutes")
    set_last_run("due", datetime.now(UTC) - timedelta(minutes=6))
    dying = recording_scheduler()
    dying._load_all()
    [entry] = dying.entries.values()
    first_id = beat.run_task_id(entry)

    # The leader publishes the run, then dies before recording it (here: the record fails).
    def die(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("killed between publishing and recording")

    monkeypatch.setattr(dying, "_record_runs", die)
    with pytest.raises(SystemExit):
        dying.tick_once()
    assert sent_names(dying) == ["due"]
    assert PeriodicTask.objects.get(name="due").total_run_count == 0
    forget_beats()  # its lock expires

    successor = recording_scheduler()
    successor._load_all()
    [again] = successor.entries.values()
    assert beat.run_task_id(again) == first_id  # the workers drop the second copy
    successor.tick_once()
    assert sent_names(successor) == ["due"]
    row = PeriodicTask.objects.get(name="due")
    assert row.total_run_count == 1
    # The next run has an id of its own.
    [recorded] = successor.entries.values()
    assert beat.run_task_id(recorded) != first_id


def test_a_run_the_broker_did_not_take_is_not_recorded_and_goes_out_a_second_later(monkeypatch):
    make_schedule(name="due", schedule="every 5 minutes")
    set_last_run("due", datetime.now(UTC) - timedelta(minutes=6))
    scheduler = recording_scheduler()
    real_send = scheduler._send
    ids: list[str] = []

    def broker_down(
        entry: Entry, producer: Any, due: datetime | None = None, **publish: Any
    ) -> str | None:
        ids.append(beat.run_task_id(entry))
        raise beat.NotPublished("Redis is restarting")

    monkeypatch.setattr(scheduler, "_send", broker_down)
    scheduler.tick_once()
    assert PeriodicTask.objects.get(name="due").total_run_count == 0

    [entry] = scheduler.entries.values()
    assert ids == [beat.run_task_id(entry)]  # tried again under this id, until it goes out

    monkeypatch.setattr(scheduler, "_send", real_send)
    with later(beat.PUBLISH_RETRY_AFTER + 0.5):
        scheduler.tick_once()

    assert sent_names(scheduler) == ["due"]
    assert PeriodicTask.objects.get(name="due").total_run_count == 1


def test_a_row_naming_a_task_outside_the_catalog_is_not_published():
    row = make_schedule(name="by hand", schedule="every 5 minutes")
    PeriodicTask.objects.filter(pk=row.pk).update(task="celery.backend_cleanup")
    set_last_run("by hand", datetime.now(UTC) - timedelta(minutes=6))
    scheduler = DatabaseScheduler(app=app, lazy=True)

    scheduler.tick_once()

    assert scheduler.stats.published == 0
    event = TaskEvent.objects.get(periodic_task_name="by hand", type="task.failed")
    assert "not in the catalog" in event.message


def test_a_tick_looks_only_at_the_entries_that_are_due():
    for n in range(50):
        make_schedule(name=f"quiet {n}", schedule="every 1 hour")
    make_schedule(name="due", schedule="every 5 minutes")
    set_last_run("due", datetime.now(UTC) - timedelta(minutes=6))
    PeriodicTask.objects.exclude(name="due").update(last_run_at=datetime.now(UTC))
    scheduler = recording_scheduler()
    scheduler.tick_once()  # the load looks at every entry once
    assert sent_names(scheduler) == ["due"]
    looked_at: list[str] = []
    real = beat.evaluate

    def counting(entry: Entry, now: datetime, tz: Any) -> Any:
        looked_at.append(entry.name)
        return real(entry, now, tz)

    beat.evaluate = counting
    try:
        with later(301):  # "due" is due again; nothing else
            scheduler.tick_once()
    finally:
        beat.evaluate = real

    assert set(looked_at) == {"due"}  # when due, and after its run for the next
    assert sent_names(scheduler) == ["due", "due"]


def test_a_burst_goes_out_in_one_tick_with_one_update_per_batch(django_assert_max_num_queries):
    for n in range(30):
        make_schedule(name=f"hourly {n}", schedule="every 1 hour")
    PeriodicTask.objects.update(last_run_at=datetime.now(UTC) - timedelta(hours=2))
    scheduler = recording_scheduler()
    scheduler.tick_once()  # loads and publishes all 30
    assert len(scheduler.sent) == 30
    PeriodicTask.objects.update(last_run_at=datetime.now(UTC) - timedelta(hours=2))
    scheduler._forget_everything()

    with django_assert_max_num_queries(12):  # marker, rows, schedules, one UPDATE: not 30 saves
        scheduler.tick_once()

    assert len(scheduler.sent) == 60
    assert set(PeriodicTask.objects.values_list("total_run_count", flat=True)) == {2}


def test_a_disabled_task_never_fires():
    make_schedule(name="paused", schedule="every 5 minutes", enabled=False)
    set_last_run("paused", datetime.now(UTC) - timedelta(hours=1))
    scheduler = recording_scheduler()

    scheduler.tick_once()

    assert scheduler.sent == []
    assert "paused" not in {entry.name for entry in scheduler.entries.values()}


def test_an_expired_task_is_disabled_and_never_fires():
    task = make_schedule(name="expired", schedule="every 5 minutes")
    PeriodicTask.objects.filter(pk=task.pk).update(
        expires=datetime.now(UTC) - timedelta(seconds=1),
        last_run_at=datetime.now(UTC) - timedelta(hours=1),
    )
    scheduler = recording_scheduler()

    scheduler.tick_once()

    assert scheduler.sent == []
    assert not PeriodicTask.objects.get(pk=task.pk).enabled


def test_it_waits_for_the_start_time():
    task = make_schedule(name="later", schedule="every 5 minutes")
    PeriodicTask.objects.filter(pk=task.pk).update(
        start_time=datetime.now(UTC) + timedelta(hours=1), last_run_at=None
    )
    scheduler = recording_scheduler()

    scheduler.tick_once()
    assert scheduler.sent == []
    with later(3601):
        scheduler.tick_once()

    assert sent_names(scheduler) == ["later"]


def test_a_one_off_runs_once_and_a_restarted_beat_does_not_run_it_again():
    make_schedule(name="once", schedule="in 1 minute")
    first = recording_scheduler()
    first.tick_once()
    assert first.sent == []

    with later(61):
        first.tick_once()
        first.tick_once()
        first.leadership.release()
        restarted = recording_scheduler()
        restarted.tick_once()

    assert sent_names(first) == ["once"]
    assert restarted.sent == []
    row = PeriodicTask.objects.get(name="once")
    assert row.enabled is False
    assert row.total_run_count == 1


def test_it_skips_runs_missed_during_downtime_when_the_policy_says_skip():
    make_schedule(name="skipper", schedule="every 5 minutes", misfire="skip")
    # Its latest run due two minutes ago: missed (the grace is a minute), as are the 23 before.
    set_last_run("skipper", datetime.now(UTC) - timedelta(hours=2, minutes=2))
    scheduler = recording_scheduler()

    scheduler.tick_once()

    assert scheduler.sent == []
    skipped_at = PeriodicTask.objects.get(name="skipper").last_run_at
    assert skipped_at is not None
    # Moved on to the latest run missed (not made): the next is the next due time.
    assert timedelta(0) <= datetime.now(UTC) - skipped_at < timedelta(minutes=5)
    assert TaskEvent.objects.filter(type="task.skipped", periodic_task_name="skipper").exists()
    with later(185):  # its next run, three minutes on
        scheduler.tick_once()
    assert sent_names(scheduler) == ["skipper"]


def test_it_runs_once_after_downtime_when_the_policy_says_run_once():
    make_schedule(name="catcher", schedule="every 5 minutes", misfire="run_once")
    set_last_run("catcher", datetime.now(UTC) - timedelta(hours=2))
    scheduler = recording_scheduler()

    scheduler.tick_once()
    scheduler.tick_once()

    assert sent_names(scheduler) == ["catcher"]
    assert not TaskEvent.objects.filter(type="task.skipped").exists()


def test_it_publishes_the_task_arguments_and_headers():
    task = make_schedule(name="with params", task="scheduler.sleep", params={"seconds": 0.5})
    set_last_run("with params", datetime.now(UTC) - timedelta(hours=1))
    scheduler = recording_scheduler()

    scheduler.tick_once()

    assert scheduler.sent == [("with params", "scheduler.sleep", [], {"seconds": 0.5})]
    entry = scheduler.entries[task.pk]
    assert entry.options["headers"]["periodic_task_name"] == "with params"


def test_two_beats_agree_on_when_a_jittered_run_goes_out():
    task = make_schedule(name="jittered", schedule="every 1 hour")
    ScheduleOptions.objects.filter(periodic_task=task).update(jitter=1800)
    set_last_run("jittered", datetime.now(UTC) - timedelta(minutes=10))
    last_run_at = PeriodicTask.objects.get(pk=task.pk).last_run_at
    assert last_run_at is not None
    due = last_run_at + timedelta(hours=1)
    times = []
    for _ in range(2):
        scheduler = recording_scheduler()
        assert scheduler.leadership.hold()
        scheduler._load_all()
        scheduler._run_due(datetime.now(UTC).timestamp())
        [when] = [item[0] for item in scheduler._due]
        times.append(when)
        scheduler.leadership.release()
    assert abs(times[0] - times[1]) < 1e-3  # the same instant (to the rounding of floats)
    assert due.timestamp() <= times[0] <= due.timestamp() + 1800
    assert [entry.name for entry in scheduler.entries.values()] == ["jittered"]
