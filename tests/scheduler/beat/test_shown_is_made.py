"""The runs shown are the runs beat makes (issue 19, item 6).

For random schedules (cron fields and intervals), zones, DST weeks, save and last-run times,
start and end times, jitter, run limits and catch-up policies, the next runs every display shows
(`periodic_task_upcoming`, read from the rows: what the CLI, API, dashboard, heatmap and admin
preview call) are exactly the runs our beat publishes over a simulated week: the real scheduler
(its heap, its decisions, its recording of each run in the database) driven tick by tick with
the clock moved to each next check, publishing captured at `_send` (helpers.py's `Recording`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.models import ScheduleOptions
from scheduler.schedules.rows import periodic_task_upcoming
from tests.scheduler.beat.helpers import recording_scheduler

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_leader")]

# Weeks with a DST change in one of the zones below (and one without).
WEEKS = [
    datetime(2027, 3, 10, 12, 0, tzinfo=UTC),  # New York springs forward on the 14th
    datetime(2027, 3, 25, 6, 30, tzinfo=UTC),  # London on the 28th
    datetime(2027, 10, 28, 0, 0, tzinfo=UTC),  # London falls back on the 31st
    datetime(2027, 11, 3, 18, 15, tzinfo=UTC),  # New York on the 7th
    datetime(2027, 4, 1, 9, 0, tzinfo=UTC),  # Lord Howe's half hour back on the 4th
    datetime(2027, 6, 2, 0, 0, tzinfo=UTC),  # no change anywhere
]
ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]
WEEK = timedelta(days=7)

crontabs = st.builds(
    lambda minute, hour, dow: {"minute": minute, "hour": hour, "day_of_week": dow},
    st.sampled_from(["0", "30", "5,35", "*/20", "59"]),
    st.sampled_from(["*", "2", "1-3", "*/6", "9", "0,12"]),
    st.sampled_from(["*", "1-5", "0"]),
)
intervals = st.sampled_from(
    [(37, "minutes"), (1, "hours"), (90, "minutes"), (5, "hours"), (1, "days"), (2, "days")]
)
offsets = st.integers(min_value=0, max_value=3 * 24 * 3600)


@st.composite
def schedules(draw: Any) -> dict[str, Any]:
    return {
        "cron": draw(st.none() | crontabs),
        "interval": draw(intervals),
        "zone": draw(st.sampled_from(ZONES)),
        "week": draw(st.sampled_from(WEEKS)),
        "saved_before": draw(offsets),
        "last_run_before": draw(st.none() | offsets),
        "start_after": draw(st.none() | st.integers(min_value=-3600, max_value=3 * 24 * 3600)),
        "end_after": draw(st.none() | st.integers(min_value=3600, max_value=8 * 24 * 3600)),
        "jitter": draw(st.sampled_from([0, 0, 45, 600])),
        "max_runs": draw(st.none() | st.integers(min_value=1, max_value=12)),
        "catchup": draw(st.sampled_from(["none", "latest", "all"])),
        "window": draw(st.none() | st.sampled_from([600, 3600, 86400])),
    }


def _make(spec: dict[str, Any]) -> PeriodicTask:
    week = spec["week"]
    fields: dict[str, Any] = {"name": "shown", "task": "scheduler.ping", "kwargs": "{}"}
    if spec["cron"] is not None:
        fields["crontab"] = CrontabSchedule.objects.create(
            **spec["cron"], day_of_month="*", month_of_year="*", timezone=spec["zone"]
        )
    else:
        every, period = spec["interval"]
        fields["interval"], _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    if spec["start_after"] is not None:
        fields["start_time"] = week + timedelta(seconds=spec["start_after"])
    if spec["end_after"] is not None:
        fields["expires"] = week + timedelta(seconds=spec["end_after"])
    task = PeriodicTask.objects.create(**fields)
    ScheduleOptions.objects.create(
        periodic_task=task,
        timezone=spec["zone"],
        jitter=spec["jitter"],
        max_runs=spec["max_runs"],
        remaining_runs=spec["max_runs"],
        catchup=spec["catchup"],
        catchup_window=spec["window"],
    )
    last_run_at = None
    if spec["last_run_before"] is not None:
        last_run_at = week - timedelta(seconds=spec["last_run_before"])
    # UPDATEs: save() stamps date_changed with the real clock.
    PeriodicTask.objects.filter(pk=task.pk).update(
        date_changed=week - timedelta(seconds=spec["saved_before"]), last_run_at=last_run_at
    )
    return PeriodicTask.objects.select_related("options", "crontab", "interval").get(pk=task.pk)


def _beat_week(start: datetime) -> list[tuple[datetime, datetime]]:
    """(due time, simulated publish time) of every run our beat makes from `start` for a week."""
    scheduler = recording_scheduler()
    assert scheduler.leadership.hold()
    made: list[tuple[datetime, datetime]] = []
    try:
        scheduler._load_all()
        now = start.timestamp()
        end = (start + WEEK).timestamp()
        while now <= end:
            before = len(scheduler.dues)
            scheduler._run_due(now)
            moment = datetime.fromtimestamp(now, tz=UTC)
            made += [(due, moment) for due in scheduler.dues[before:] if due is not None]
            upcoming = scheduler._due[0][0] if scheduler._due else math.inf
            now = max(upcoming, now + 1e-3)  # the clock moves to the next check
    finally:
        scheduler.leadership.release()
    return made


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=schedules())
def test_the_next_runs_shown_are_the_runs_beat_publishes(spec: dict[str, Any]) -> None:
    task = _make(spec)
    try:
        start = spec["week"]
        shown = periodic_task_upcoming(task, count=2000, now=start, until=start + WEEK)

        made = _beat_week(start)

        assert [run.due for run in shown] == [due for due, _ in made]
        for run, (_, published) in zip(shown, made, strict=True):
            # Published when it was shown to go out (to the float rounding of the clock).
            assert abs((run.at - published).total_seconds()) < 1e-3, (run, published)
    finally:
        PeriodicTask.objects.filter(pk=task.pk).delete()
        CrontabSchedule.objects.all().delete()
