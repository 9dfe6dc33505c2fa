"""Our beat scheduler's decisions (`evaluate` in scheduler/beat/scheduler.py), as
django-celery-beat's `ModelEntry.is_due` makes them: run, wait (and how long), skip under the
misfire policy, finish; and what counts as a misfire.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django_celery_beat.models import ClockedSchedule, IntervalSchedule

from scheduler.beat.scheduler import FINISH, RUN, SKIP, WAIT, Entry, evaluate, is_misfire

# `no_leader` (conftest.py): no leader lock or heartbeat of an earlier beat, before or after.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_leader")]

NOW = datetime(2026, 5, 4, 12, 0, 30, tzinfo=UTC)


# --- evaluate: the decisions of django-celery-beat's ModelEntry.is_due -------------------------


def _entry(**overrides: Any) -> Entry:
    fields: dict[str, Any] = {
        "id": 1,
        "name": "e",
        "task": "scheduler.ping",
        "args": "[]",
        "kwargs": "{}",
        "options": {},
        "kind": "interval",
        "schedule_id": 1,
        "schedule": IntervalSchedule(every=5, period="minutes").schedule,
        "last_run_at": NOW - timedelta(minutes=1),
        "total_run_count": 0,
        "one_off": False,
        "start_time": None,
        "expires": None,
        "misfire": "run_once",
        "row": (),
    }
    fields.update(overrides)
    return Entry(**fields)


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("overrides", "action"),
    [
        ({}, WAIT),
        ({"last_run_at": NOW - timedelta(minutes=5, seconds=1)}, RUN),
        ({"start_time": NOW + timedelta(hours=1), "last_run_at": NOW - timedelta(days=1)}, WAIT),
        ({"expires": NOW - timedelta(seconds=1)}, FINISH),
        ({"one_off": True, "total_run_count": 1}, FINISH),
        ({"last_run_at": NOW - timedelta(hours=2), "misfire": "skip"}, SKIP),
        ({"last_run_at": NOW - timedelta(hours=2), "misfire": "run_once"}, RUN),
        ({"last_run_at": NOW - timedelta(minutes=5, seconds=30), "misfire": "skip"}, RUN),
    ],
)
def test_it_decides_as_django_celery_beat_does(overrides, action):
    assert evaluate(_entry(**overrides), NOW, UTC).action == action


@time_machine.travel(NOW, tick=False)
def test_it_waits_as_long_as_the_schedule_says():
    decision = evaluate(_entry(last_run_at=NOW - timedelta(minutes=1)), NOW, UTC)

    assert decision.action == WAIT
    assert 239 <= decision.next_check <= 240


@time_machine.travel(NOW, tick=False)
def test_a_late_one_off_runs_even_under_the_skip_policy():
    schedule = ClockedSchedule(clocked_time=NOW - timedelta(hours=3)).schedule
    entry = _entry(kind="clocked", schedule=schedule, one_off=True, misfire="skip")

    assert evaluate(entry, NOW, UTC).action == RUN


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
