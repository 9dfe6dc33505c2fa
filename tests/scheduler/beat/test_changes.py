"""How our beat scheduler picks up changes (scheduler/beat/changes.py): notices sent after commit
reload only the rows they name, a change that sent none is found by django-celery-beat's marker
(a comparison of every row spread over ticks), and a database outage does not stop beat.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from django.db import OperationalError, transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from scheduler.beat import scheduler as beat
from scheduler.beat.changes import CHANGES_CHANNEL, Changes, notify_beat
from scheduler.core.redis_connection import redis_key
from tests.factories import make_schedule
from tests.scheduler.beat.helpers import (
    Recording,
    later,
    next_message,
    recording_scheduler,
    redis_client,
    sent_names,
    set_last_run,
)

# `no_leader` (conftest.py): no leader lock or heartbeat of an earlier beat, before or after.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_leader")]


# --- Changes ---------------------------------------------------------------------------------


def _loaded(*names: str) -> Recording:
    scheduler = recording_scheduler()
    scheduler.tick_once()
    assert {entry.name for entry in scheduler.entries.values()} >= set(names)
    return scheduler


def test_a_notice_reloads_only_the_rows_it_names():
    tasks = [make_schedule(name=f"row {n}", schedule="every 1 hour") for n in range(20)]
    scheduler = _loaded("row 0")
    PeriodicTask.objects.filter(pk=tasks[3].pk).update(task="scheduler.health_check")

    scheduler.stats.reloaded = 0
    scheduler.apply_changes(Changes(tasks={tasks[3].pk}))

    assert scheduler.stats.reloaded == 1
    assert scheduler.entries[tasks[3].pk].task == "scheduler.health_check"


def test_a_notice_of_a_deleted_or_disabled_row_removes_its_entry():
    gone, paused, kept = (make_schedule(name=n, schedule="every 1 hour") for n in "abc")
    scheduler = _loaded("a", "b", "c")
    PeriodicTask.objects.filter(pk=paused.pk).update(enabled=False)
    PeriodicTask.objects.filter(pk=gone.pk).delete()

    scheduler.apply_changes(Changes(tasks={paused.pk}, deleted={gone.pk}))

    assert set(scheduler.entries) == {kept.pk}


def test_a_notice_of_a_schedule_row_reloads_the_tasks_on_it():
    task = make_schedule(name="hourly cron", schedule="0 * * * *")
    scheduler = _loaded("hourly cron")
    crontab = CrontabSchedule.objects.get(pk=cast(int, task.crontab_id))
    CrontabSchedule.objects.filter(pk=crontab.pk).update(minute="30")

    scheduler.apply_changes(Changes(schedules={"crontab": {crontab.pk}}))

    assert scheduler.entries[task.pk].schedule.minute == {30}


def test_a_change_that_sent_no_notice_is_found_by_the_marker():
    tasks = [make_schedule(name=f"bulk {n}", schedule="every 1 hour") for n in range(5)]
    scheduler = _loaded("bulk 0")
    # What django-celery-beat asks of bulk changes: update, then move the marker.
    PeriodicTask.objects.filter(pk__in=[t.pk for t in tasks[:2]]).update(enabled=False)
    PeriodicTasks.update_changed()

    with later(beat.SYNC_INTERVAL + 0.1):
        scheduler.tick_once()

    assert scheduler.stats.full_reloads == 1
    assert set(scheduler.entries) == {t.pk for t in tasks[2:]}


def test_a_comparison_of_every_row_goes_on_over_ticks_and_due_runs_go_out_between(monkeypatch):
    tasks = [make_schedule(name="fast", schedule="every 1 second")]
    tasks += [make_schedule(name=f"many {n}", schedule="every 1 hour") for n in range(6)]
    PeriodicTask.objects.update(last_run_at=datetime.now(UTC))
    scheduler = _loaded("fast")
    monkeypatch.setattr(beat, "_CHUNK", 2)
    monkeypatch.setattr(beat, "COMPARE_BUDGET", 0.0)  # one chunk per tick
    PeriodicTask.objects.filter(pk=tasks[6].pk).update(enabled=False)
    PeriodicTasks.update_changed()

    waits = []
    with later(beat.SYNC_INTERVAL + 0.1):
        for _ in range(4):
            waits.append(scheduler.tick_once())
            if scheduler.stats.full_reloads:
                break

    assert waits[:-1] == [0.0] * (len(waits) - 1)  # each unfinished comparison ticks again at once
    assert len(waits) == 4  # 7 rows, 2 a tick
    assert scheduler.stats.full_reloads == 1
    assert tasks[6].pk not in scheduler.entries
    assert sent_names(scheduler) == ["fast"]  # due by the clock, published meanwhile


def test_an_unchanged_marker_costs_one_query(django_assert_num_queries):
    make_schedule(name="steady", schedule="every 1 hour")
    scheduler = _loaded("steady")

    with later(beat.SYNC_INTERVAL + 0.1), django_assert_num_queries(1):
        scheduler.tick_once()


def test_a_reload_keeps_a_later_last_run_than_a_stale_save_wrote():
    task = make_schedule(name="stale", schedule="every 5 minutes")
    set_last_run("stale", datetime.now(UTC) - timedelta(minutes=6))
    scheduler = recording_scheduler()
    scheduler.tick_once()
    assert sent_names(scheduler) == ["stale"]
    # The admin's form, read before that run, saved the old last_run_at back.
    set_last_run("stale", datetime.now(UTC) - timedelta(minutes=6))

    scheduler.apply_changes(Changes(tasks={task.pk}))
    scheduler.tick_once()

    assert sent_names(scheduler) == ["stale"]


@pytest.mark.django_db(transaction=True)
def test_saves_send_one_notice_per_transaction_after_commit():
    subscription = redis_client().pubsub(ignore_subscribe_messages=True)
    subscription.subscribe(redis_key(CHANGES_CHANNEL))
    try:
        with transaction.atomic():
            first = make_schedule(name="noticed 1")
            second = make_schedule(name="noticed 2")
            assert next_message(subscription, 0.2) is None  # not before the commit
        message = next_message(subscription, 2)
        assert message is not None
        notice = Changes()
        notice.add_message(message["data"])
        assert {first.pk, second.pk} <= notice.tasks
        assert next_message(subscription, 0.3) is None

        with pytest.raises(RuntimeError):
            _create_then_fail("rolled back")
        assert next_message(subscription, 0.3) is None

        PeriodicTask.objects.filter(pk=first.pk).delete()
        message = next_message(subscription, 2)
        assert message is not None
        notice = Changes()
        notice.add_message(message["data"])
        assert first.pk in notice.deleted
    finally:
        subscription.close()


@transaction.atomic
def _create_then_fail(name: str) -> None:
    make_schedule(name=name)
    raise RuntimeError("rolled back")


def test_a_notice_that_is_not_one_is_ignored():
    changes = Changes()
    for data in (b"not json", b"[1, 2]", b'{"tasks": ["x"]}', None):
        changes.add_message(data)

    assert not changes


@pytest.mark.django_db(transaction=True)
def test_bulk_enable_through_the_service_sends_a_notice():
    from scheduler.services import schedule_set_enabled_bulk

    task = make_schedule(name="bulk paused", enabled=False)
    subscription = redis_client().pubsub(ignore_subscribe_messages=True)
    subscription.subscribe(redis_key(CHANGES_CHANNEL))
    try:
        schedule_set_enabled_bulk(names=["bulk paused"], enabled=True)
        message = next_message(subscription, 2)
    finally:
        subscription.close()

    assert message is not None
    assert task.pk in json.loads(message["data"])["tasks"]


def test_notify_beat_outside_a_transaction_sends_at_once():
    # pytest-django wraps this test in a transaction that never commits: nothing is sent.
    notify_beat(tasks=[1])
    assert transaction.get_connection().run_on_commit


def test_a_database_outage_does_not_stop_beat(monkeypatch):
    make_schedule(name="steady", schedule="every 1 hour")
    scheduler = _loaded("steady")

    def unreachable(cls: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(PeriodicTasks, "last_change", classmethod(unreachable))
    with later(beat.SYNC_INTERVAL + 0.1):
        assert scheduler.tick_once() == beat.SYNC_INTERVAL
    assert scheduler.entries == {}  # starts again from the rows once the database answers
    monkeypatch.undo()
    with later(beat.SYNC_INTERVAL * 2 + 0.2):
        scheduler.tick_once()

    assert {entry.name for entry in scheduler.entries.values()} == {"steady"}
