"""Property-based tests of the two readers of untrusted text: the schedule parser and the
catalog's parameter validation. Whatever they are given, they answer or raise their documented
error (`ScheduleParseError`, `ParameterError`), never anything else, and what they accept can be
used: its next runs, its description and its JSON.

Derandomized, so every run tries the same examples.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar
from zoneinfo import available_timezones

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scheduler.catalog import MAX_PARAMS_CHARS, CatalogEntry, ParameterError, load_catalog
from scheduler.schedules.parsing import (
    ParsedSchedule,
    ScheduleParseError,
    crontab_sets,
    parse_schedule,
    zone_named,
)

pytestmark = pytest.mark.security

PROPERTIES = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

ZONES = sorted(available_timezones())

T = TypeVar("T")
E = TypeVar("E", bound=Exception)


def outcome(call: Callable[[], T], expected: type[E]) -> tuple[T | None, E | None]:
    """What `call` returns, or the `expected` error it raises; any other error fails the test."""
    try:
        return call(), None
    except expected as exc:
        return None, exc


# --- Strategies ----------------------------------------------------------------------------------

small = st.integers(min_value=0, max_value=60).map(str)
numbers = st.one_of(
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=0, max_value=10**30),
    st.sampled_from(["0", "00", "007", "2147483648", "9" * 40, "1e5", "-1", "+3", "1.5"]),
).map(str)
words = st.sampled_from(
    [
        *("every", "in", "at", "on", "the", "and", "next", "today", "tomorrow", ","),
        *("second", "seconds", "sec", "minute", "minutes", "min", "hour", "hours", "day"),
        *("days", "week", "weeks", "month", "year", "fortnight", "weekday", "weekend"),
        *("monday", "tues", "weds", "thurs", "sun", "sat", "fridays", "noon", "midnight"),
        *("hourly", "daily", "weekly", "monthly", "yearly", "am", "pm", "1st", "31st", "99th"),
        *("2pm", "12am", "13pm", "0am", "9:30", "24:00", "23:59", "7:60", "99:99"),
    ]
)
cron_field = st.lists(
    st.one_of(
        st.just("*"),
        small,
        numbers,
        st.builds(lambda a, b: f"{a}-{b}", small, small),
        st.builds(lambda a, b: f"{a}-{b}", numbers, numbers),
        st.builds(lambda a, s: f"{a}/{s}", st.sampled_from(["*", "0", "1-5", "5-7", "7"]), small),
        st.builds(lambda a, s: f"{a}/{s}", st.sampled_from(["*", "0", "1-5", "5-7", "7"]), numbers),
        st.sampled_from(["jan", "dec", "sun", "sat", "mon-fri", "jan-dec", "sun-sat", "foo"]),
    ),
    min_size=1,
    max_size=3,
).map(",".join)
cron = st.lists(cron_field, min_size=5, max_size=5).map(" ".join)
iso = st.builds(
    "{:04d}-{:02d}-{:02d} {:02d}:{:02d}{}".format,
    st.sampled_from([1, 2, 1970, 2024, 2100, 9998, 9999]),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.sampled_from(["", "Z", "+05:00", "-12:00", "+14:00", ":00.5", "T"]),
)
units = st.sampled_from(["second", "seconds", "minutes", "min", "hours", "day", "days", "weeks"])
times = st.one_of(
    st.sampled_from(["noon", "midnight", "9am", "12pm", "13pm", "0am", "9:30", "23:59", "24:00"]),
    st.builds("{}:{:02d}".format, st.integers(0, 30), st.integers(0, 70)),
)
days = st.sampled_from(
    [
        "day",
        "week",
        "weekday",
        "weekend",
        "monday",
        "sunday and saturday",
        "tue, thu and sat",
        "year",
    ]
)
# Phrases shaped as the grammar has them, with numbers and times in range and out of it.
sentences = st.one_of(
    st.builds("every {} {}".format, numbers, units),
    st.builds("every {} at {}".format, days, times),
    st.builds("every month on the {}th at {}".format, numbers, times),
    st.builds("in {} {}".format, numbers, units),
    st.builds("{} at {}".format, st.sampled_from(["today", "tomorrow", "next monday"]), times),
    st.sampled_from(["hourly", "daily", "weekly", "monthly", "yearly", "every minute"]),
)
phrases = st.one_of(
    sentences,
    st.lists(st.one_of(words, numbers), min_size=1, max_size=7).map(" ".join),
    cron,
    iso,
    st.text(max_size=60),
    st.text(alphabet=string.ascii_letters + string.digits + " *,-/:", max_size=60),
)
zone_names = st.one_of(
    st.sampled_from(ZONES),
    st.sampled_from(["", "UTC\x00", "America", "Europe/", "../etc/passwd", "a" * 300, "."]),
    st.text(max_size=40),
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# Any aware moment is a `now` a caller may pass (`manage.py scheduler parse --now`): mostly one
# of these decades, sometimes one at an end of the calendar.
nows = st.one_of(
    st.datetimes(
        # Hypothesis takes naive bounds and makes them aware in `timezones`.
        min_value=datetime(1971, 1, 1),  # noqa: DTZ001
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=offsets,
    ),
    st.datetimes(timezones=st.one_of(offsets, st.sampled_from(ZONES).map(zone_named))),
    st.sampled_from(
        [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
    ),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.text(max_size=3).map(lambda t: t * 30_000),  # long strings
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def params_for(entry: CatalogEntry) -> st.SearchStrategy[Any]:
    """Raw parameters: mostly objects naming the entry's own parameters, any JSON otherwise."""
    names = list(entry.params.model_fields)
    keys = st.one_of(st.sampled_from(names), st.text(max_size=10)) if names else st.text()
    return st.one_of(
        st.dictionaries(keys, json_values, max_size=len(names) + 2),
        json_values,
    )


# --- The schedule parser -------------------------------------------------------------------------


@settings(PROPERTIES, max_examples=2000)
@given(text=phrases, tz=st.one_of(st.just("UTC"), zone_names), now=nows)
def test_it_reads_any_text_as_a_schedule_or_says_what_it_expected(text, tz, now):
    parsed, error = outcome(lambda: parse_schedule(text, tz=tz, now=now), ScheduleParseError)

    if error is not None:
        assert str(error).strip()
        event("refused")
        return
    assert parsed is not None
    event(f"read as {parsed.kind}")
    assert_usable(parsed, now)


@PROPERTIES
@given(name=zone_names)
def test_it_reads_any_time_zone_name_or_names_it_unknown(name):
    zone, error = outcome(lambda: zone_named(name), ScheduleParseError)

    if error is not None:
        assert "time zone" in str(error)
        return
    assert zone is not None
    assert zone.key == name


def assert_usable(parsed: ParsedSchedule, now: datetime) -> None:
    """What the services and beat do with a parsed schedule works."""
    assert parsed.description.strip()
    runs = parsed.next_runs(3, now=now)
    assert all(run > now for run in runs)
    assert runs == sorted(set(runs))
    json.dumps(parsed.as_dict(now=now, count=3))
    if parsed.interval is not None:
        # Stored in a 32-bit database column.
        assert 1 <= parsed.interval.every < 2**31
    if parsed.clocked is not None:
        assert parsed.clocked.tzinfo is not None
        parsed.clocked.astimezone(UTC)


def cron_days(field: str) -> set[int]:
    """Days of week as cron reads them (0 and 7 are Sunday): the reference the parser must meet."""
    days: set[int] = set()
    for token in field.split(","):
        span, _, step = token.partition("/")
        first, _, last = span.partition("-")
        days |= set(range(int(first), int(last or first) + 1, int(step or 1)))
    return {day % 7 for day in days}


day_token = st.one_of(
    st.integers(0, 7).map(str),
    st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(1, 8)).map(
        lambda t: f"{min(t[:2])}-{max(t[:2])}" + (f"/{t[2]}" if t[2] > 1 else "")
    ),
)


@PROPERTIES
@given(field=st.lists(day_token, min_size=1, max_size=3).map(",".join))
def test_it_reads_cron_days_of_week_as_cron_does_with_7_as_sunday(field):
    parsed = parse_schedule(f"0 9 * * {field}", now=datetime(2025, 1, 1, tzinfo=UTC))

    assert parsed.crontab is not None
    assert set(crontab_sets(parsed.crontab).days_of_week) == cron_days(field)


# --- The catalog's parameters --------------------------------------------------------------------


def catalog_entries() -> list[CatalogEntry]:
    return list(load_catalog())


@pytest.mark.django_db  # some parameters are checked against rows (an agent's slug)
@pytest.mark.parametrize("entry", catalog_entries(), ids=lambda entry: entry.name)
def test_it_validates_any_parameters_or_names_what_is_wrong(entry):
    @PROPERTIES
    @given(raw=params_for(entry))
    def check(raw: Any) -> None:
        checked, error = outcome(lambda: entry.validate(raw), ParameterError)

        if error is not None:
            assert error.task == entry.name
            assert error.errors
            assert all(path and messages for path, messages in error.errors.items())
            assert all(text.strip() for messages in error.errors.values() for text in messages)
            return
        # What is accepted is strict JSON, small, and accepted again as it is.
        text = json.dumps(checked, allow_nan=False)
        assert len(text) <= MAX_PARAMS_CHARS
        assert entry.validate(json.loads(text)) == checked

    check()
