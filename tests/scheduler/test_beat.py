"""Our beat scheduler: the misfire policy after downtime, and the heartbeat."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from config.celery import app
from scheduler.beat import DatabaseScheduler, ModelEntry, is_misfire
from scheduler.health import beat_heartbeat, check_beat
from scheduler.models import TaskEvent
from tests.factories import make_schedule

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 4, 12, 0, 30, tzinfo=UTC)


def _entry_last_run(name: str, last_run_at: datetime) -> ModelEntry:
    PeriodicTask.objects.filter(name=name).update(last_run_at=last_run_at)
    model = PeriodicTask.objects.select_related("options").get(name=name)
    return ModelEntry(model, app=app)


@pytest.mark.parametrize(
    ("remaining", "misfire"),
    [
        (timedelta(seconds=10), False),
        (timedelta(seconds=-5), False),
        (timedelta(seconds=-60), False),
        (timedelta(seconds=-61), True),
        (timedelta(hours=-3), True),
    ],
)
def test_it_calls_a_run_late_by_more_than_the_grace_a_misfire(remaining, misfire):
    assert is_misfire(remaining=remaining) is misfire


@time_machine.travel(NOW, tick=False)
def test_it_skips_runs_missed_during_downtime_when_the_policy_says_skip():
    make_schedule(name="skipper", schedule="every 5 minutes", misfire="skip")
    entry = _entry_last_run("skipper", NOW - timedelta(hours=2))

    due, next_in = entry.is_due()

    assert due is False
    assert 299 <= next_in <= 300
    assert PeriodicTask.objects.get(name="skipper").last_run_at == NOW
    assert TaskEvent.objects.filter(type="task.skipped", periodic_task_name="skipper").exists()


@time_machine.travel(NOW, tick=False)
def test_it_runs_once_after_downtime_when_the_policy_says_run_once():
    make_schedule(name="catcher", schedule="every 5 minutes", misfire="run_once")
    entry = _entry_last_run("catcher", NOW - timedelta(hours=2))

    due, _ = entry.is_due()

    assert due is True
    assert not TaskEvent.objects.filter(type="task.skipped").exists()


@time_machine.travel(NOW, tick=False)
def test_it_runs_an_ordinary_due_run_under_the_skip_policy():
    make_schedule(name="on time", schedule="every 5 minutes", misfire="skip")
    entry = _entry_last_run("on time", NOW - timedelta(minutes=5, seconds=2))

    due, _ = entry.is_due()

    assert due is True


def test_it_records_a_heartbeat_at_most_every_few_seconds():
    scheduler = DatabaseScheduler(app=app, lazy=True)

    scheduler.heartbeat()
    first = beat_heartbeat()
    scheduler.heartbeat()

    assert first is not None
    assert first["pid"] == os.getpid()
    assert beat_heartbeat() == first
    assert abs(first["at"] - time.time()) < 5
    assert check_beat().ok
