"""The next-runs preview and its DST warnings (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)

from scheduler.schedules.parsing import CrontabSpec
from scheduler.schedules.preview import (
    crontab_preview,
    format_run,
    interval_preview,
    periodic_task_preview,
)

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
UTC_ZONE = ZoneInfo("UTC")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "zone", "now", "first_run", "warning"),
    [
        # Spring forward: 02:30 does not exist, the run moves to 03:30.
        (
            "30 2 * * *",
            NEW_YORK,
            "2025-03-08 12:00",
            "Sun 2025-03-09 03:30 EDT",
            "02:30 does not exist that day: the run happens at 03:30 EDT instead",
        ),
        # Spring forward: the 02:00 run of an hourly job falls on the 03:00 run.
        (
            "0 * * * *",
            NEW_YORK,
            "2025-03-09 06:30",
            "Sun 2025-03-09 03:00 EDT",
            "02:00 does not exist that day: that run is skipped (already due at 03:00 EDT)",
        ),
        # Fall back: 01:30 happens twice, the job runs at the first only.
        (
            "30 1 * * *",
            NEW_YORK,
            "2025-11-01 12:00",
            "Sun 2025-11-02 01:30 EDT",
            "01:30 happens twice that day: the job runs once, at the first (EDT)",
        ),
        # Europe/London moves at 01:00 UTC: 01:30 does not exist on the last Sunday of March.
        (
            "30 1 * * *",
            LONDON,
            "2025-03-29 12:00",
            "Sun 2025-03-30 02:30 BST",
            "01:30 does not exist that day: the run happens at 02:30 BST instead",
        ),
        (
            "30 1 * * *",
            LONDON,
            "2025-10-25 12:00",
            "Sun 2025-10-26 01:30 BST",
            "01:30 happens twice that day",
        ),
    ],
)
def test_it_warns_of_runs_a_dst_change_moves_merges_or_repeats(cron, zone, now, first_run, warning):
    minute, hour, dom, month, dow = cron.split()
    spec = CrontabSpec(
        minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow
    )

    runs, warnings = crontab_preview(spec, zone, now=at(now))

    assert len(runs) == 5
    assert format_run(runs[0]).startswith(first_run)
    assert len(warnings) == 1
    assert warning in warnings[0]


@pytest.mark.parametrize(
    ("cron", "now"),
    [
        ("30 2 * * *", "2025-06-01 12:00"),  # no change of clocks in sight
        ("30 2 * * *", "2025-03-09 08:00"),  # the change has just happened: old news
        ("0 12 * * *", "2025-03-08 12:00"),  # noon is far from the change
        ("30 2 * * *", "2025-11-01 12:00"),  # 02:30 is after the repeated hour
    ],
)
def test_it_does_not_warn_when_no_run_is_affected(cron, now):
    minute, hour, *_ = cron.split()

    _, warnings = crontab_preview(CrontabSpec(minute=minute, hour=hour), NEW_YORK, now=at(now))

    assert warnings == []


def test_it_sums_up_a_repeated_hour_of_minutely_runs():
    _, warnings = crontab_preview(CrontabSpec(), NEW_YORK, now=at("2025-11-02 05:58"))

    assert len(warnings) == 1
    assert "01:00, 01:01, 01:02 and 57 more happen twice" in warnings[0]


@pytest.mark.parametrize(
    ("seconds", "warned"),
    [(86400, True), (3 * 3600, True), (300, False)],
)
def test_it_warns_when_an_interval_crosses_a_clock_change(seconds, warned):
    now = at("2025-03-09 06:58")  # 01:58 EST: clocks go forward in two minutes

    runs, warnings = interval_preview(
        seconds, NEW_YORK, now=now, last_run_at=now - timedelta(seconds=seconds - 60)
    )

    assert bool(warnings) is warned
    if warned:
        assert "go forward 1 hour between" in warnings[0]
    assert runs[0] == now + timedelta(seconds=60)


def test_it_counts_an_interval_from_its_last_run():
    runs, _ = interval_preview(
        3600, UTC_ZONE, now=at("2025-06-02 12:00"), last_run_at=at("2025-06-02 08:10"), count=3
    )

    assert [f"{run:%H:%M}" for run in runs] == ["12:10", "13:10", "14:10"]


def test_it_previews_a_crontab_row_in_its_zone():
    task = PeriodicTask(
        name="t",
        task="scheduler.ping",
        crontab=CrontabSchedule(minute="30", hour="2", timezone="America/New_York"),
    )

    preview = periodic_task_preview(task, now=at("2025-03-07 12:00"))

    assert preview.timezone == "America/New_York"
    assert len(preview.runs) == 5
    assert len(preview.warnings) == 1


def test_it_stops_the_preview_at_the_expiry_time():
    task = PeriodicTask(
        name="t",
        task="scheduler.ping",
        interval=IntervalSchedule(every=1, period="hours"),
        expires=at("2025-06-02 14:30"),
    )

    preview = periodic_task_preview(task, now=at("2025-06-02 12:00"))

    assert [f"{run:%H:%M}" for run in preview.runs] == ["13:00", "14:00"]


@pytest.mark.parametrize(
    ("task", "note"),
    [
        (
            PeriodicTask(
                name="t",
                task="x",
                interval=IntervalSchedule(every=1, period="hours"),
                enabled=False,
            ),
            "disabled",
        ),
        (
            PeriodicTask(
                name="t",
                task="x",
                one_off=True,
                clocked=ClockedSchedule(clocked_time=at("2025-06-01 00:00")),
            ),
            "in the past",
        ),
        (
            PeriodicTask(
                name="t",
                task="x",
                interval=IntervalSchedule(every=1, period="hours"),
                expires=at("2025-06-01 00:00"),
            ),
            "expired",
        ),
        (PeriodicTask(name="t", task="x"), "No schedule"),
    ],
)
def test_it_notes_why_runs_will_not_happen(task, note):
    preview = periodic_task_preview(task, now=at("2025-06-02 12:00"))

    assert any(note in text for text in preview.notes)


def test_it_starts_the_preview_at_the_start_time():
    start = at("2025-06-05 00:00")
    task = PeriodicTask(
        name="t",
        task="x",
        interval=IntervalSchedule(every=1, period="days"),
        start_time=start,
    )

    preview = periodic_task_preview(task, now=at("2025-06-02 12:00"))

    assert preview.runs[0] > start - timedelta(seconds=1)
