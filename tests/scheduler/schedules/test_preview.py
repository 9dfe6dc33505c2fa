"""The next-runs preview and its DST warnings (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)

from scheduler.models import ScheduleOptions
from scheduler.schedules.parsing import CrontabSpec
from scheduler.schedules.preview import (
    crontab_preview,
    duration_words,
    format_run,
    interval_preview,
    periodic_task_preview,
    policy_effects,
    schedule_preview,
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


# --- The policies in words, and the preview of a schedule being edited ---------------------------


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 s"),
        (30, "30 s"),
        (60, "1 minute"),
        (300, "5 minutes"),
        (90, "1 min 30 s"),
        (3600, "1 hour"),
        (7200, "2 hours"),
        (5400, "1 h 30 min"),
        (86400, "1 day"),
        (2 * 86400, "2 days"),
        (86400 + 6 * 3600, "1 day 6 h"),
    ],
)
def test_it_puts_a_duration_in_words(seconds, words):
    assert duration_words(seconds) == words


POLICIES: dict[str, Any] = {
    "overlap": "allow",
    "catchup": "latest",
    "catchup_window": None,
    "zone": LONDON,
}


@pytest.mark.parametrize(
    ("changes", "effect"),
    [
        (
            {"overlap": "skip"},
            "overlap skip: a run due while the previous one still runs is skipped",
        ),
        (
            {"overlap": "buffer_one"},
            "overlap buffer_one: a run that starts while the previous one runs waits for it; "
            "further ones are dropped",
        ),
        (
            {"overlap": "buffer_all"},
            "overlap buffer_all: runs that start while the previous one runs wait for it, then "
            "run one by one in order",
        ),
        (
            {"overlap": "cancel_other"},
            "overlap cancel_other: a new run asks the running one to stop (cooperatively, as a "
            "soft time limit does), then starts",
        ),
        (
            {"overlap": "terminate_other"},
            "overlap terminate_other: a new run terminates the running one at once, then starts",
        ),
        (
            {"overlap": "default", "task_overlap": "skip"},
            "overlap skip (the task's default): a run due while the previous one still runs is "
            "skipped",
        ),
        (
            {"catchup": "none"},
            "catch-up none: runs missed while beat was down are not made; the schedule waits for "
            "its next due time",
        ),
        (
            {"catchup_window": 3600},
            "catch-up latest within 1 hour: after beat was down, the latest missed run within "
            "the last hour is made",
        ),
        (
            {"catchup": "all", "catchup_window": 7200},
            "catch-up all within 2 hours: after beat was down, every missed run within the last "
            "2 hours is made, in order",
        ),
        (
            {"catchup": "all"},
            "catch-up all: after beat was down, every missed run is made however late, in order",
        ),
        (
            {"catchup_window": 0},
            "catch-up latest within 0 s: runs missed while beat was down are not made",
        ),
        (
            {"jitter": 90},
            "jitter up to 1 min 30 s: each run goes out up to 1 min 30 s after its due time (the "
            "same delay whichever beat sends it)",
        ),
        ({"max_runs": 3}, "ends after 3 runs (max runs)"),
        ({"max_runs": 1}, "ends after 1 run (max runs)"),
        ({"max_runs": 3, "remaining_runs": 2}, "ends after 2 more of 3 runs (max runs)"),
        (
            {"max_runs": 3, "remaining_runs": 0},
            "max runs 3 reached: no more runs (beat disabled it)",
        ),
        ({"one_off": True}, "one-off: runs once, then is disabled"),
        (
            {"end": at("2025-06-05 11:00")},
            "ends on Thu 2025-06-05 12:00 BST (UTC+01:00) (end time)",
        ),
        (
            {"start": at("2025-06-05 11:00")},
            "starts on Thu 2025-06-05 12:00 BST (UTC+01:00) (start time)",
        ),
    ],
)
def test_it_puts_each_policy_in_words(changes, effect):
    assert effect in policy_effects(**(POLICIES | changes))


def test_it_says_nothing_of_the_policies_left_unset():
    assert policy_effects(**POLICIES) == [
        "overlap allow: a run starts even while the previous one still runs",
        "catch-up latest: after beat was down, the latest missed run is made however late, once",
    ]


def _edited(**columns) -> PeriodicTask:
    """An unsaved periodic task running every day at 9am in London, with unsaved options."""
    options = columns.pop("options", {})
    columns.setdefault("crontab", CrontabSchedule(minute="0", hour="9", timezone="Europe/London"))
    task = PeriodicTask(name="t", task="x", **columns)
    ScheduleOptions(periodic_task=task, timezone="Europe/London", **options)
    return task


def test_the_schedule_preview_reads_the_unsaved_options():
    task = _edited(options={"overlap": "buffer_all", "catchup": "none", "jitter": 5})

    preview = schedule_preview(task, now=at("2025-06-02 12:00"))

    assert preview.timezone == "Europe/London"
    assert len(preview.runs) == 10
    # When it goes out: its due time and the run's own jitter (the same on every beat).
    assert preview.runs[0] == datetime(2025, 6, 3, 9, 0, 1, tzinfo=LONDON)
    assert [effect.split(":")[0] for effect in preview.effects] == [
        "overlap buffer_all",
        "catch-up none",
        "jitter up to 5 s",
    ]
    assert preview.as_json()["runs"][0] == {
        "at": "2025-06-03T09:00:01+01:00",
        "utc": "2025-06-03T08:00:01+00:00",
        "text": "Tue 2025-06-03 09:00 BST (UTC+01:00)",
        "utc_text": "Tue 2025-06-03 08:00 UTC",
    }


@pytest.mark.parametrize(
    ("columns", "runs", "cutoff"),
    [
        ({"options": {"max_runs": 4}}, 4, "The list stops after 4 runs (max runs)"),
        (
            {"options": {"max_runs": 4, "remaining_runs": 2}},
            2,
            "The list stops after 2 runs (max runs)",
        ),
        ({"options": {"max_runs": 20}}, 10, ""),
        ({"options": {"max_runs": 4, "remaining_runs": 0}}, 0, "No runs left"),
        ({"one_off": True}, 1, "The list stops after 1 run (it is a one-off)"),
        ({"expires": at("2025-06-04 08:00")}, 1, "The list stops at the end time, Wed 2025-06-04"),
        ({"expires": at("2025-06-04 08:00:01")}, 2, "The list stops at the end time"),
        ({"expires": at("2025-06-01 00:00")}, 0, "The end time, Sun 2025-06-01 01:00 BST"),
        (
            {"expires": at("2025-06-10 00:00"), "options": {"max_runs": 3}},
            3,
            "The list stops after 3 runs (max runs)",
        ),
        ({"expires": at("2025-06-30 00:00")}, 10, ""),
    ],
)
def test_the_schedule_preview_stops_where_the_schedule_does_and_says_so(columns, runs, cutoff):
    preview = schedule_preview(_edited(**columns), now=at("2025-06-02 12:00"))

    assert len(preview.runs) == runs
    assert preview.cutoff.startswith(cutoff)
    assert bool(preview.cutoff) is bool(cutoff)


def test_a_one_off_time_before_the_end_time_is_not_cut():
    task = _edited(
        crontab=None,
        clocked=ClockedSchedule(clocked_time=at("2025-06-03 09:00")),
        one_off=True,
        expires=at("2025-06-10 00:00"),
    )

    preview = schedule_preview(task, now=at("2025-06-02 12:00"))

    assert (len(preview.runs), preview.cutoff) == (1, "")
