"""The policies of a schedule, checked once for every interface: overlap, catch-up (and the
misfire presets of earlier versions), jitter, start and end times, a limit on runs, and pausing
after failures.

`policies_check` reads the values an interface was given (typed or as text: "1h", "30",
"2026-05-01T09:00") and answers the columns to write, or raises ScheduleError with every bad
field named, so that the admin, the CLI, the API, declarations and imports refuse alike and a
refused write changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from scheduler.core.durations import duration_seconds, duration_written
from scheduler.schedules.parsing import ScheduleParseError, zone_named
from scheduler.schedules.policies import (
    CATCHUP_PRESETS,
    CatchUp,
    MisfirePolicy,
    OverlapPolicy,
    misfire_of,
)
from scheduler.services.errors import ScheduleError

# The fields of a schedule's policies, as the services (and every interface) name them.
POLICY_FIELDS = (
    "overlap",
    "misfire",
    "catchup",
    "catchup_window",
    "jitter",
    "start_time",
    "end_time",
    "max_runs",
    "pause_after_failures",
)
# Fields where None means "leave it as it is" (the others take None as a value: no limit).
LEFT_AS_IS_WHEN_NONE = ("overlap", "misfire", "catchup", "jitter")

JITTER_MAX = 3600
# The columns' range (PositiveIntegerField, PositiveSmallIntegerField).
_INTEGER_MAX = 2**31 - 1
PAUSE_AFTER_FAILURES_MAX = 32767
_INTEGER = re.compile(r"[+-]?\d{1,18}")


@dataclass
class PolicyChanges:
    """What to write: ScheduleOptions columns, and the PeriodicTask's start_time / expires."""

    options: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)


def policies_given(values: Mapping[str, Any], *, unset: Any) -> dict[str, Any]:
    """The policy fields of `values` a write sets: not `unset`, and not None where None means
    'leave it as it is'."""
    return {
        name: value
        for name, value in values.items()
        if name in POLICY_FIELDS
        and value is not unset
        and not (value is None and name in LEFT_AS_IS_WHEN_NONE)
    }


def policies_check(
    given: Mapping[str, Any],
    *,
    tz: str | None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    now: datetime | None = None,
) -> PolicyChanges:
    """The columns `given` sets (a field not in it, or None where None means 'leave it', is
    left as it is), or ScheduleError.

    `start_time` and `end_time` are the row's as stored (None for a new row), so that a new
    end is checked against the stored start and the other way round; `tz` reads a time given
    without an offset (the schedule's zone).
    """
    given = policies_given(given, unset=_INVALID)
    errors: dict[str, list[str]] = {}
    changes = PolicyChanges()

    def check(name: str, read: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(name, *args, **kwargs)
        except ScheduleError as exc:
            for key, messages in exc.errors.items():
                errors.setdefault(key, []).extend(messages)
            return _INVALID

    if "overlap" in given:
        value = check("overlap", _choice, given["overlap"], OverlapPolicy.values)
        if value is not _INVALID:
            changes.options["overlap"] = value
    _check_catchup(given, changes, check, errors)
    if "jitter" in given:
        value = check("jitter", _seconds, given["jitter"], low=0, high=JITTER_MAX)
        if value is not _INVALID:
            changes.options["jitter"] = value
    if "max_runs" in given:
        value = check("max_runs", _count, given["max_runs"], high=_INTEGER_MAX, none=_NO_LIMIT)
        if value is not _INVALID:
            changes.options["max_runs"] = value
            # A new limit starts counting again: staff setting it again refills the runs.
            changes.options["remaining_runs"] = value
    if "pause_after_failures" in given:
        value = check(
            "pause_after_failures",
            _count,
            given["pause_after_failures"],
            high=PAUSE_AFTER_FAILURES_MAX,
            none="or leave it empty never to pause",
        )
        if value is not _INVALID:
            changes.options["pause_after_failures"] = value
    _check_times(given, changes, check, errors, tz=tz, start=start_time, end=end_time, now=now)
    if errors:
        raise ScheduleError(errors)
    return changes


_INVALID: Any = object()
_NO_LIMIT = "or leave it empty for no limit"


def _check_catchup(
    given: Mapping[str, Any], changes: PolicyChanges, check: Any, errors: dict[str, list[str]]
) -> None:
    """catchup and catchup_window, and misfire as the preset of both it names."""
    catchup = given.get("catchup")
    has_window = "catchup_window" in given
    window = given.get("catchup_window")
    misfire = given.get("misfire")
    if misfire is not None:
        preset = CATCHUP_PRESETS.get(misfire) if isinstance(misfire, str) else None
        if preset is None:
            check("misfire", _choice, misfire, MisfirePolicy.values)
            return
        preset_catchup, preset_window = preset
        if catchup is not None and catchup != preset_catchup:
            errors.setdefault("misfire", []).append(
                f"{misfire!r} is the preset of catchup {preset_catchup!r}, but catchup is "
                f"{catchup!r}: give one of them"
            )
            return
        catchup = preset_catchup
        if not has_window:
            has_window, window = True, preset_window
    if catchup is not None:
        value = check("catchup", _choice, catchup, CatchUp.values)
        if value is not _INVALID:
            changes.options["catchup"] = value
            changes.options["misfire"] = misfire_of(value)
    if has_window:
        value = check("catchup_window", _seconds, window, low=1, high=_INTEGER_MAX, none=_NO_LIMIT)
        if value is not _INVALID:
            changes.options["catchup_window"] = value


def _check_times(
    given: Mapping[str, Any],
    changes: PolicyChanges,
    check: Any,
    errors: dict[str, list[str]],
    *,
    tz: str | None,
    start: datetime | None,
    end: datetime | None,
    now: datetime | None,
) -> None:
    """start_time and end_time: readable, and an end after the start and not in the past."""
    if "start_time" not in given and "end_time" not in given:
        return
    zone = _zone(tz)
    stored_end = end
    if "start_time" in given:
        start = check("start_time", _moment, given["start_time"], zone)
        if start is not _INVALID:
            changes.task["start_time"] = start
    if "end_time" in given:
        end = check("end_time", _moment, given["end_time"], zone)
        if end is not _INVALID:
            changes.task["expires"] = end
    if start is _INVALID or end is _INVALID or end is None:
        return
    if start is not None and end <= start:
        errors.setdefault("end_time", []).append(
            f"{end.isoformat()} is not after start_time {start.isoformat()}: the schedule "
            "would never run (give an end after the start)"
        )
    elif end != stored_end and end <= (now or datetime.now(UTC)):
        errors.setdefault("end_time", []).append(
            f"{end.isoformat()} is in the past: the schedule would never run"
        )


def _zone(tz: str | None) -> Any:
    # An unknown zone is refused on its own field (timezone); times are then read in UTC.
    try:
        return zone_named(tz or "UTC")
    except ScheduleParseError:
        return UTC


def _choice(name: str, value: Any, choices: list[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ScheduleError.on(name, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _whole(name: str, value: Any, *, text: Any) -> int:
    """`value` as an int: an int, or text that `text` reads (digits, or a duration)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ScheduleError.on(name, f"{value!r} is not a whole number")
    if isinstance(value, int):
        return value
    stripped = value.strip()
    if _INTEGER.fullmatch(stripped):
        return int(stripped)
    try:
        number: int = text(stripped)
    except ValueError as exc:
        raise ScheduleError.on(name, str(exc)) from None
    return number


def _not_a_count(value: str) -> int:
    raise ValueError(f"{value!r} is not a whole number")


def _seconds(name: str, value: Any, *, low: int, high: int, none: str | None = None) -> int | None:
    """Seconds as a number or a duration ('90', '30m', '1h'); None (or empty) when `none`
    allows it."""
    if value in (None, "") and none is not None:
        return None
    if value is None:
        raise ScheduleError.on(name, "a number of seconds is required")
    seconds = _whole(name, value, text=duration_seconds)
    if seconds < low:
        raise ScheduleError.on(
            name,
            f"{seconds} is less than {low}: give a number of seconds {_range(low, high)}"
            + (f", {none}" if none else ""),
        )
    if seconds > high:
        raise ScheduleError.on(
            name,
            f"{seconds} seconds is more than the limit, {high} seconds ({duration_written(high)})",
        )
    return seconds


def _range(low: int, high: int) -> str:
    return f"from {low} to {high}" if high < _INTEGER_MAX else f"of at least {low}"


def _count(name: str, value: Any, *, high: int, none: str) -> int | None:
    """A count of at least 1, or None (or empty)."""
    if value in (None, ""):
        return None
    count = _whole(name, value, text=_not_a_count)
    if count < 1:
        raise ScheduleError.on(name, f"{count} would never let it run: give 1 or more, {none}")
    if count > high:
        raise ScheduleError.on(name, f"{count} is more than the limit, {high}")
    return count


def _moment(name: str, value: Any, zone: Any) -> datetime | None:
    """A datetime, or ISO 8601 text; one without an offset is read in the schedule's zone."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ScheduleError.on(
                name,
                f"{value!r} is not an ISO 8601 date or time (e.g. 2026-05-01T09:00 or "
                "2026-05-01T09:00:00+02:00)",
            ) from None
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):  # a day (a YAML file's 2026-05-01): from its midnight
        moment = datetime.combine(value, time(), tzinfo=zone)
    else:
        raise ScheduleError.on(name, f"{value!r} is not a date and time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        moment = _EARLIEST - timedelta(days=1)
    if not _EARLIEST <= moment <= _LATEST:
        # A day away from either end, so that it can be shown in any zone.
        raise ScheduleError.on(name, f"{value!r} is outside the years 2 to 9998")
    return moment


_EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
_LATEST = datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)
