"""A schedule's due times over a range (what a backfill runs): pure, on unsaved rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from scheduler.schedules.rows import periodic_task_times_between, periodic_task_times_count


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def cron(minute: str, hour: str, zone: str = "UTC", **fields: str) -> PeriodicTask:
    row = CrontabSchedule(minute=minute, hour=hour, timezone=zone, **fields)
    return PeriodicTask(name="t", task="scheduler.ping", crontab=row)


def every(count: int, period: str, *, last_run_at: datetime | None = None) -> PeriodicTask:
    return PeriodicTask(
        name="t",
        task="scheduler.ping",
        interval=IntervalSchedule(every=count, period=period),
        last_run_at=last_run_at,
        date_changed=at("2025-01-01 00:00:17"),
    )


def utc(runs: list[datetime]) -> list[str]:
    return [run.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") for run in runs]


@pytest.mark.parametrize(
    ("task", "start", "end", "expected"),
    [
        # Both ends are in the range.
        (
            cron("0", "9"),
            "2025-01-15 09:00",
            "2025-01-17 09:00",
            ["2025-01-15 09:00:00", "2025-01-16 09:00:00", "2025-01-17 09:00:00"],
        ),
        (cron("0", "9"), "2025-01-15 09:00:01", "2025-01-16 08:59", []),
        (
            cron("*/20", "*"),
            "2025-01-15 10:05",
            "2025-01-15 11:00",
            ["2025-01-15 10:20:00", "2025-01-15 10:40:00", "2025-01-15 11:00:00"],
        ),
        # A crontab's wall times are in its zone: 09:00 in New York is 14:00 UTC in winter.
        (
            cron("0", "9", "America/New_York"),
            "2025-01-15 00:00",
            "2025-01-16 23:59",
            ["2025-01-15 14:00:00", "2025-01-16 14:00:00"],
        ),
    ],
)
def test_it_lists_a_crontabs_times_in_the_range(task, start, end, expected):
    assert utc(periodic_task_times_between(task, at(start), at(end), 100)) == expected


@pytest.mark.parametrize(
    ("task", "start", "end", "expected"),
    [
        # Spring forward in New York (9 March 2025): 02:30 does not exist and runs at 03:30 EDT.
        (
            cron("30", "2", "America/New_York"),
            "2025-03-08 00:00",
            "2025-03-10 23:00",
            ["2025-03-08 07:30:00", "2025-03-09 07:30:00", "2025-03-10 06:30:00"],
        ),
        # Fall back (2 November 2025): 01:30 happens twice and runs once, at its first (EDT).
        (
            cron("30", "1", "America/New_York"),
            "2025-11-01 00:00",
            "2025-11-03 23:00",
            ["2025-11-01 05:30:00", "2025-11-02 05:30:00", "2025-11-03 06:30:00"],
        ),
        # Every hour over the fall-back night: 24 wall hours, 25 real ones, each run once.
        (
            cron("0", "*", "America/New_York"),
            "2025-11-02 04:00",
            "2025-11-03 04:00",
            [
                f"{moment:%Y-%m-%d %H:%M:%S}"
                for moment in (at("2025-11-02 04:00") + timedelta(hours=h) for h in range(25))
                if moment != at("2025-11-02 06:00")
            ],
        ),
    ],
)
def test_it_resolves_dst_as_beat_does(task, start, end, expected):
    assert utc(periodic_task_times_between(task, at(start), at(end), 100)) == expected


def test_an_interval_steps_back_and_forth_from_its_last_run():
    task = every(10, "minutes", last_run_at=at("2025-01-15 12:03:30"))

    runs = periodic_task_times_between(task, at("2025-01-15 11:40"), at("2025-01-15 12:30"), 100)

    assert utc(runs) == [
        "2025-01-15 11:43:30",
        "2025-01-15 11:53:30",
        "2025-01-15 12:03:30",
        "2025-01-15 12:13:30",
        "2025-01-15 12:23:30",
    ]


def test_an_interval_that_never_ran_counts_from_when_it_was_saved():
    task = every(1, "days")  # saved 2025-01-01 00:00:17

    runs = periodic_task_times_between(task, at("2024-12-30 00:00"), at("2025-01-02 00:00"), 100)

    assert utc(runs) == ["2024-12-30 00:00:17", "2024-12-31 00:00:17", "2025-01-01 00:00:17"]


def test_an_interval_includes_a_run_at_either_end():
    task = every(1, "hours", last_run_at=at("2025-01-15 12:00"))

    runs = periodic_task_times_between(task, at("2025-01-15 10:00"), at("2025-01-15 12:00"), 100)

    assert utc(runs) == ["2025-01-15 10:00:00", "2025-01-15 11:00:00", "2025-01-15 12:00:00"]


def test_a_one_off_has_its_one_time_when_inside():
    task = PeriodicTask(
        name="t",
        task="scheduler.ping",
        clocked=ClockedSchedule(clocked_time=at("2025-01-15 09:00")),
    )

    assert utc(periodic_task_times_between(task, at("2025-01-15"), at("2025-01-16"), 10)) == [
        "2025-01-15 09:00:00"
    ]
    assert periodic_task_times_between(task, at("2025-01-16"), at("2025-01-17"), 10) == []


def test_it_lists_at_most_one_more_than_the_limit():
    task = cron("*", "*")

    runs = periodic_task_times_between(task, at("2025-01-15 00:00"), at("2025-01-16 00:00"), 5)

    assert len(runs) == 6


def test_a_range_that_ends_before_it_starts_has_no_times():
    assert periodic_task_times_between(cron("*", "*"), at("2025-01-16"), at("2025-01-15"), 5) == []


def test_a_solar_schedule_has_no_times_listed():
    task = PeriodicTask(
        name="t",
        task="scheduler.ping",
        solar=SolarSchedule(event="sunrise", latitude=51.5, longitude=0),
    )

    assert periodic_task_times_between(task, at("2025-01-15"), at("2025-01-20"), 5) == []


@pytest.mark.parametrize(
    ("task", "start", "end", "count"),
    [
        # An interval's are counted exactly however many they are (never listed).
        (every(1, "seconds", last_run_at=at("2025-01-01")), "2025-01-01", "2025-01-02", 86_401),
        (
            every(10, "minutes", last_run_at=at("2025-01-01 00:05")),
            "2025-01-01",
            "2025-01-01 01:00",
            6,
        ),
        (every(10, "minutes", last_run_at=at("2025-01-01")), "2025-01-02", "2025-01-01", 0),
        # A crontab's are counted up to the cap, then "more than".
        (cron("0", "*"), "2025-01-01", "2025-01-02", 25),
        (cron("*", "*"), "2025-01-01", "2025-02-01", 1_001),
    ],
)
def test_it_counts_the_times_of_a_range(task, start, end, count):
    assert periodic_task_times_count(task, at(start), at(end), cap=1_000) == count


def test_a_range_at_the_edges_of_the_calendar_lists_what_it_can():
    first, last = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)

    # No error (an API caller may send these): a crontab's search cannot start before the
    # calendar does, and finds none there.
    assert periodic_task_times_between(cron("0", "9"), first, last, 3) == []
    assert len(periodic_task_times_between(cron("0", "9"), at("9999-12-30"), last, 3)) == 2
    assert len(periodic_task_times_between(every(1, "days"), first, last, 3)) == 4
    assert periodic_task_times_count(every(1, "days"), first, last, cap=10) == 3_652_059
