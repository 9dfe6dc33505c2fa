"""A schedule's pause, pure: when it ends as staff write it ("2h", "1d", "2027-03-01 09:00"), and
the pause as every display shows it (who, why, until when).

A paused schedule is a disabled periodic task whose options say who paused it, why, and when it
resumes by itself (scheduler/services/pauses.py writes them). A disabled task without them is
just disabled: shown as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from scheduler.core.durations import duration_seconds
from scheduler.schedules.parsing import ScheduleParseError, zone_named
from scheduler.schedules.rows import options_of

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

UNTIL_HELP = (
    "when it resumes by itself: a duration from now (30m, 2h, 1d, 1h30m) or a date and time "
    "(2027-03-01 09:00, 2027-03-01T09:00:00+01:00); empty: until resumed"
)


class PauseUntilError(ValueError):
    """An "until" that is not a duration nor a date and time, or not in the future."""


def pause_until_read(text: str, *, now: datetime, tz: str = "UTC") -> datetime:
    """When a pause written as `text` ends: `now` plus a duration, or a date and time (one
    without an offset is read in `tz`). PauseUntilError unless it is after `now`."""
    value = (text or "").strip()
    if not value:
        raise PauseUntilError("write a duration (2h) or a date and time, or leave it empty")
    try:
        seconds = duration_seconds(value)
    except ValueError:
        moment = _moment(value, tz=tz)
    else:
        try:
            moment = now + timedelta(seconds=seconds)
        except OverflowError:
            raise PauseUntilError(f"{text!r} is too far ahead") from None
    return pause_until_checked(moment, now=now)


def pause_until_checked(moment: datetime, *, now: datetime) -> datetime:
    """`moment` when it is after `now` and has a zone; PauseUntilError saying why not."""
    if moment.tzinfo is None:
        raise PauseUntilError(f"{moment.isoformat()} has no time zone")
    if moment <= now:
        raise PauseUntilError(
            f"{moment.isoformat(timespec='seconds')} is in the past: a pause ends in the future"
        )
    return moment


def _moment(value: str, *, tz: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PauseUntilError(
            f"{value!r} is neither a duration (30m, 2h, 1d, 1h30m) nor a date and time "
            "(2027-03-01 09:00 or 2027-03-01T09:00:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        try:
            moment = moment.replace(tzinfo=zone_named(tz))
        except ScheduleParseError as exc:
            raise PauseUntilError(str(exc)) from None
    try:
        moment.astimezone(UTC)  # as the database will store it
    except OverflowError:
        raise PauseUntilError(f"{value!r} is outside the calendar once in UTC") from None
    return moment


@dataclass(frozen=True)
class Pause:
    """A schedule's pause: since when, by whom (a user's name; None when no signed-in user made
    it: the system after failed runs, whose note says so, or the command line), why, and until
    when (None: until resumed)."""

    at: datetime
    by: str | None
    note: str
    until: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """The pause in JSON (the API's and the CLI's `pause`)."""
        return {
            "paused_at": self.at.isoformat(),
            "paused_by": self.by,
            "note": self.note,
            "until": self.until.isoformat() if self.until is not None else None,
        }

    def until_text(self, zone: tzinfo | None = None) -> str:
        """'until 2027-03-01 09:00 CET' (in `zone`, else UTC), or 'until resumed'."""
        if self.until is None:
            return "until resumed"
        local = self.until.astimezone(zone or UTC)
        return f"until {local:%Y-%m-%d %H:%M %Z}"

    def text(self, zone: tzinfo | None = None) -> str:
        """'paused by alice until 2027-03-01 09:00 CET: deploy freeze' (times in `zone`);
        'paused until resumed: paused after 3 failed runs in a row'."""
        by = f" by {self.by}" if self.by is not None else ""
        line = f"paused{by} {self.until_text(zone)}"
        return f"{line}: {self.note}" if self.note else line


def pause_of(periodic_task: PeriodicTask) -> Pause | None:
    """The pause of `periodic_task`, or None when it is enabled or disabled without one.

    Reads `options.paused_by`: lists select it with the options (`options__paused_by`).
    """
    if periodic_task.enabled:
        return None
    options = options_of(periodic_task)
    if options is None or options.paused_at is None:
        return None
    user = options.paused_by if options.paused_by_id is not None else None
    return Pause(
        at=options.paused_at,
        by=user.get_username() if user is not None else (options.paused_by_name or None),
        note=options.pause_note,
        until=options.paused_until,
    )


def pause_dict(periodic_task: PeriodicTask) -> dict[str, Any] | None:
    """`pause_of` in JSON; None when not paused."""
    pause = pause_of(periodic_task)
    return pause.as_dict() if pause is not None else None
