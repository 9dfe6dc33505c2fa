"""The schedule parser: every phrase the product promises, cron validation, and DST."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.schedules.parsing import (
    _SEARCH_DAYS,
    CrontabSpec,
    ScheduleParseError,
    crontab_runs,
    crontab_sets,
    parse_schedule,
    resolve_wall_time,
)

# A Wednesday.
NOW = datetime(2024, 1, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "every", "period"),
    [
        ("every 5 minutes", 5, "minutes"),
        ("every minute", 1, "minutes"),
        ("every hour", 1, "hours"),
        ("every 2 hours", 2, "hours"),
        ("every 30 seconds", 30, "seconds"),
        ("every second", 1, "seconds"),
        ("every 1 second", 1, "seconds"),
        ("every 3 days", 3, "days"),
        ("every 2 weeks", 14, "days"),
        ("Every  5   Minutes", 5, "minutes"),
    ],
)
def test_it_reads_intervals(text, every, period):
    parsed = parse_schedule(text, now=NOW)

    assert parsed.kind == "interval"
    assert parsed.interval is not None
    assert (parsed.interval.every, parsed.interval.period) == (every, period)


@pytest.mark.parametrize(
    ("text", "minute", "hour", "day_of_week", "day_of_month", "month_of_year"),
    [
        ("every day at 2pm", "0", "14", "*", "*", "*"),
        ("every day at 14:30", "30", "14", "*", "*", "*"),
        ("every day at 2am", "0", "2", "*", "*", "*"),
        ("every day at 12am", "0", "0", "*", "*", "*"),
        ("every day at noon", "0", "12", "*", "*", "*"),
        ("every monday at 8am", "0", "8", "1", "*", "*"),
        ("every sunday", "0", "0", "0", "*", "*"),
        ("every monday and friday at 6pm", "0", "18", "1,5", "*", "*"),
        ("every weekday at 9:30", "30", "9", "1-5", "*", "*"),
        ("every weekend at 10am", "0", "10", "0,6", "*", "*"),
        ("every week", "0", "0", "1", "*", "*"),
        ("every month on the 1st at 9am", "0", "9", "*", "1", "*"),
        ("every month on the 15th", "0", "0", "*", "15", "*"),
        ("hourly", "0", "*", "*", "*", "*"),
        ("daily", "0", "0", "*", "*", "*"),
        ("weekly", "0", "0", "1", "*", "*"),
        ("daily at midnight", "0", "0", "*", "*", "*"),
        ("0 2 * * *", "0", "2", "*", "*", "*"),
        ("*/15 * * * *", "*/15", "*", "*", "*", "*"),
        ("0 9 * * 1", "0", "9", "1", "*", "*"),
        ("30 8 1-7 * mon", "30", "8", "mon", "1-7", "*"),
        ("0 0 * * 7", "0", "0", "0", "*", "*"),
        ("0 0 1 jan,jul *", "0", "0", "*", "1", "jan,jul"),
    ],
)
def test_it_reads_crontabs(text, minute, hour, day_of_week, day_of_month, month_of_year):
    parsed = parse_schedule(text, now=NOW)

    assert parsed.kind == "crontab"
    assert parsed.crontab is not None
    assert (
        parsed.crontab.minute,
        parsed.crontab.hour,
        parsed.crontab.day_of_week,
        parsed.crontab.day_of_month,
        parsed.crontab.month_of_year,
    ) == (minute, hour, day_of_week, day_of_month, month_of_year)
    assert parsed.description


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("in 5 minutes", "UTC", "2024-01-10T12:05:00+00:00"),
        ("in 2 hours", "UTC", "2024-01-10T14:00:00+00:00"),
        ("in 30 seconds", "UTC", "2024-01-10T12:00:30+00:00"),
        ("tomorrow at 9am", "UTC", "2024-01-11T09:00:00+00:00"),
        ("tomorrow at 9am", "America/New_York", "2024-01-11T09:00:00-05:00"),
        ("today at 6pm", "Europe/London", "2024-01-10T18:00:00+00:00"),
        ("next monday at 8am", "UTC", "2024-01-15T08:00:00+00:00"),
        ("next wednesday at 8am", "UTC", "2024-01-17T08:00:00+00:00"),
        ("2024-01-15 14:30", "UTC", "2024-01-15T14:30:00+00:00"),
        ("2024-01-15 14:30", "America/New_York", "2024-01-15T14:30:00-05:00"),
        ("2024-01-15T14:30:00", "Europe/Paris", "2024-01-15T14:30:00+01:00"),
        ("2024-01-15T14:30:00+02:00", "UTC", "2024-01-15T12:30:00+00:00"),
        ("2024-01-15T14:30:00Z", "UTC", "2024-01-15T14:30:00+00:00"),
    ],
)
def test_it_reads_one_off_times(text, tz, expected):
    parsed = parse_schedule(text, tz=tz, now=NOW)

    assert parsed.kind == "clocked"
    assert parsed.clocked is not None
    assert parsed.clocked.isoformat() == expected
    assert parsed.next_runs(3, now=NOW) == ([parsed.clocked] if parsed.clocked > NOW else [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the schedule is empty"),
        ("whenever you like", "cannot read 'whenever you like' as a schedule: expected"),
        ("0 25 * * *", "hour 25 is out of range 0-23"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 0 32 * *", "day of month 32 is out of range 1-31"),
        ("0 0 0 * *", "day of month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day of week 8 is out of range 0-7"),
        ("0 0 * * funday", "day of week 'funday' is not a number"),
        ("*/0 * * * *", "a step of 0 never repeats"),
        ("every 0 minutes", "must repeat at least once"),
        ("every fortnight", "after 'every' expected"),
        ("every day at 25:00", "hour 25 is out of range 0-23"),
        ("every day at 13pm", "hour 13 is out of range 1-12 with pm"),
        ("every day at 9:75", "minute 75 is out of range 0-59"),
        ("in 5 fortnights", "expected 'in N seconds|minutes|hours|days|weeks'"),
        ("next funday", "'funday' is not a day of the week"),
        ("2024-13-45 10:00", "cannot read '2024-13-45 10:00' as a date and time"),
        ("x" * 201, "longer than 200 characters"),
    ],
)
def test_it_rejects_what_it_cannot_read_with_a_message_saying_why(text, message):
    with pytest.raises(ScheduleParseError) as error:
        parse_schedule(text, now=NOW)

    assert message in str(error.value)


def test_it_rejects_an_unknown_time_zone():
    with pytest.raises(ScheduleParseError, match="unknown time zone 'Mars/Olympus'"):
        parse_schedule("every day", tz="Mars/Olympus", now=NOW)


def test_it_lists_interval_runs_from_now():
    parsed = parse_schedule("every 15 minutes", now=NOW)

    assert parsed.next_runs(3, now=NOW) == [NOW + timedelta(minutes=15 * k) for k in (1, 2, 3)]


def test_it_lists_crontab_runs_in_the_schedule_time_zone():
    parsed = parse_schedule("every weekday at 9:30", tz="Europe/London", now=NOW)

    runs = [run.isoformat() for run in parsed.next_runs(4, now=NOW)]

    assert runs == [
        "2024-01-11T09:30:00+00:00",
        "2024-01-12T09:30:00+00:00",
        "2024-01-15T09:30:00+00:00",
        "2024-01-16T09:30:00+00:00",
    ]


def test_it_needs_both_day_fields_to_match_like_celery():
    parsed = parse_schedule("30 8 1-7 * mon", now=NOW)

    runs = parsed.next_runs(3, now=NOW)

    assert [run.date().isoformat() for run in runs] == ["2024-02-05", "2024-03-04", "2024-04-01"]


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        # Fall back: 01:30 happens twice; the job runs once, at the first (daylight) one.
        ("America/New_York", "2024-11-03", ["2024-11-03T01:30:00-04:00"]),
        # Spring forward: 01:30 exists once; it runs once.
        ("America/New_York", "2024-03-10", ["2024-03-10T01:30:00-05:00"]),
        ("Europe/London", "2024-10-27", ["2024-10-27T01:30:00+01:00"]),
        # In London the spring gap is 01:00-02:00: 01:30 is shifted forward by the gap.
        ("Europe/London", "2024-03-31", ["2024-03-31T02:30:00+01:00"]),
    ],
)
def test_a_daily_0130_job_runs_exactly_once_on_dst_days(tz, day, expected):
    zone = ZoneInfo(tz)
    parsed = parse_schedule("every day at 1:30", tz=tz, now=NOW)
    start = datetime.fromisoformat(day).replace(tzinfo=zone) - timedelta(days=1)

    runs = [
        run.isoformat()
        for run in parsed.next_runs(3, now=start.astimezone(UTC))
        if run.date().isoformat() == day
    ]

    assert runs == expected


def test_a_job_in_the_spring_gap_runs_once_shifted_by_the_gap():
    zone = ZoneInfo("America/New_York")
    parsed = parse_schedule("30 2 * * *", tz="America/New_York", now=NOW)
    start = datetime(2024, 3, 9, 12, 0, tzinfo=zone)

    runs = [run.isoformat() for run in parsed.next_runs(3, now=start)]

    assert runs == [
        "2024-03-10T03:30:00-04:00",
        "2024-03-11T02:30:00-04:00",
        "2024-03-12T02:30:00-04:00",
    ]


def test_hourly_runs_keep_their_wall_clock_across_fall_back():
    zone = ZoneInfo("America/New_York")
    parsed = parse_schedule("0 * * * *", tz="America/New_York", now=NOW)
    start = datetime(2024, 11, 3, 0, 30, tzinfo=zone)

    runs = [run.isoformat() for run in parsed.next_runs(3, now=start)]

    assert runs == [
        "2024-11-03T01:00:00-04:00",
        "2024-11-03T02:00:00-05:00",
        "2024-11-03T03:00:00-05:00",
    ]


def test_as_dict_matches_the_cli_json_shape():
    parsed = parse_schedule("every monday at 8am", tz="America/New_York", now=NOW)

    payload = parsed.as_dict(now=NOW, count=2)

    assert payload == {
        "kind": "crontab",
        "interval": None,
        "crontab": {
            "minute": "0",
            "hour": "8",
            "day_of_week": "1",
            "day_of_month": "*",
            "month_of_year": "*",
        },
        "clocked": None,
        "timezone": "America/New_York",
        "description": parsed.description,
        "next_runs": ["2024-01-15T08:00:00-05:00", "2024-01-22T08:00:00-05:00"],
    }


def test_it_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="naive"):
        parse_schedule("every day", now=datetime(2024, 1, 1))  # noqa: DTZ001


# --- crontab_runs against the slow way -----------------------------------------------------------


def _runs_the_slow_way(spec: CrontabSpec, zone: ZoneInfo, *, after: datetime) -> Iterator[datetime]:
    """crontab_runs before its steady-day shortcut: every wall time of every matching day, from
    the day before `after`, resolved through UTC."""
    sets = crontab_sets(spec)
    try:
        day = after.astimezone(zone).date() - timedelta(days=1)
    except OverflowError:
        return
    last: datetime | None = None
    for _ in range(_SEARCH_DAYS):
        if (
            day.month in sets.months
            and day.day in sets.days_of_month
            and (day.isoweekday() % 7) in sets.days_of_week
        ):
            for hour in sets.hours:
                for minute in sets.minutes:
                    try:
                        run = resolve_wall_time(datetime.combine(day, time(hour, minute)), zone)
                    except OverflowError:
                        continue
                    if run > after and (last is None or run > last):
                        last = run
                        yield run
        if day == date.max:
            return
        day += timedelta(days=1)


def _shown(runs: Iterator[datetime], count: int) -> list[tuple[str, int]]:
    # The wall time and offset as pages show them, and the fold: equal instants are not enough.
    return [(run.isoformat(), run.fold) for run in islice(runs, count)]


def _offset_changes(zone: ZoneInfo, year: int) -> list[datetime]:
    """The instants of `year` at which `zone`'s offset changes, to the minute."""
    changes = []
    at = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(hours=6)
    while at < end:
        low, high = at, at + step
        if low.astimezone(zone).utcoffset() != high.astimezone(zone).utcoffset():
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            changes.append(high)
        at += step
    return changes


# Zones whose changes fall at or across midnight, skip a day, or move by half an hour.
AWKWARD_ZONES = [
    "America/Toronto",  # 1919-03-30: a gap from 23:30 to 00:30
    "America/Sao_Paulo",
    "America/Santiago",
    "America/Havana",
    "America/Asuncion",
    "America/Nuuk",
    "Asia/Beirut",
    "Asia/Gaza",
    "Asia/Tehran",
    "Australia/Lord_Howe",
    "Pacific/Apia",  # 2011-12-30 skipped
    "Pacific/Kwajalein",
    "Pacific/Chatham",
    "Europe/London",
    "America/New_York",
]
ALL_ZONES = sorted(available_timezones())
MINUTES = ["*", "0", "30", "45", "59", "0,30", "*/15", "*/7"]
HOURS = ["*", "0", "23", "0,23", "1-3", "*/6", "2", "12,0"]


@st.composite
def near_a_change(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    zone = ZoneInfo(draw(st.one_of(st.sampled_from(AWKWARD_ZONES), st.sampled_from(ALL_ZONES))))
    year = draw(st.integers(min_value=1900, max_value=2045))
    changes = _offset_changes(zone, year) or [datetime(year, 7, 1, tzinfo=UTC)]
    change = draw(st.sampled_from(changes))
    seconds = draw(st.integers(min_value=-3 * 86400, max_value=6 * 3600))
    return zone, change + timedelta(seconds=seconds, microseconds=draw(st.sampled_from([0, 1])))


@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    near=near_a_change(),
    minute=st.sampled_from(MINUTES),
    hour=st.sampled_from(HOURS),
    day_of_month=st.sampled_from(["*", "*", "1", "15", "31"]),
    day_of_week=st.sampled_from(["*", "*", "0", "1-5", "6"]),
)
def test_crontab_runs_are_the_slow_way_s_in_every_zone(
    near: tuple[ZoneInfo, datetime], minute: str, hour: str, day_of_month: str, day_of_week: str
) -> None:
    zone, after = near
    spec = CrontabSpec(minute, hour, day_of_week, day_of_month)

    assert _shown(crontab_runs(spec, zone, after=after), 40) == _shown(
        _runs_the_slow_way(spec, zone, after=after), 40
    )


@pytest.mark.parametrize(
    ("tz", "expression", "after"),
    [
        # The gap from 23:30 to 00:30 spans midnight: 23:45 is 00:45 after the change.
        ("America/Toronto", "45 23 * * *", datetime(1919, 3, 30, 12, tzinfo=UTC)),
        ("America/Toronto", "50 23 * * *", datetime(1919, 3, 31, 4, 40, tzinfo=UTC)),
        ("America/Toronto", "*/15 23,0 * * *", datetime(1919, 3, 30, 12, tzinfo=UTC)),
        ("Pacific/Apia", "0 */6 * * *", datetime(2011, 12, 29, tzinfo=UTC)),
        # The last and first days of the calendar, far from UTC either way.
        ("Etc/GMT+12", "*/20 * * * *", datetime(9999, 12, 30, 10, tzinfo=UTC)),
        ("Etc/GMT-14", "*/20 * * * *", datetime(9999, 12, 30, 10, tzinfo=UTC)),
        ("Etc/GMT-14", "0 * * * *", datetime(1, 1, 1, 0, 30, tzinfo=UTC)),
        ("Etc/GMT+12", "0 * * * *", datetime(1, 1, 1, 0, 30, tzinfo=UTC)),
        ("Etc/GMT+12", "0 0 * * *", datetime(9999, 12, 31, 20, tzinfo=UTC)),
    ],
)
def test_crontab_runs_are_the_slow_way_s_at_awkward_midnights_and_calendar_edges(
    tz: str, expression: str, after: datetime
) -> None:
    minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
    spec = CrontabSpec(minute, hour, day_of_week, day_of_month, month_of_year)
    zone = ZoneInfo(tz)

    assert _shown(crontab_runs(spec, zone, after=after), 500) == _shown(
        _runs_the_slow_way(spec, zone, after=after), 500
    )
