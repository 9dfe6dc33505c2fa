"""The next runs of a periodic task, and the warnings staff need about them (DST above all).

Crontab runs follow `scheduler.schedules.parsing`'s rules, so the preview shows what the parser
promises: a wall time inside a spring-forward gap runs once, shifted forward by the gap (or is
absorbed by a run already due at the shifted time); a wall time the fall-back hour repeats runs
once, at its first occurrence. Both are worth a warning, because staff reading "every day at
2:30" expect 2:30 on every day.

No queries of its own: `periodic_task_preview` reads the columns of a row loaded with its
schedule rows and options (`select_related`), the rest is pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from scheduler.schedules.parsing import (
    CrontabSpec,
    ParsedSchedule,
    ScheduleParseError,
    crontab_runs,
    crontab_sets,
    resolve_wall_time,
    zone_named,
)
from scheduler.schedules.rows import crontab_spec_of, options_of

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

PREVIEW_COUNT = 5
_PERIOD_SECONDS = {
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "microseconds": 1e-6,
}
# Listing every minute of a repeated hour helps nobody: the first few, then a count.
_TIMES_SHOWN = 3


@dataclass(frozen=True)
class Preview:
    timezone: str
    runs: list[datetime] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Why there are no runs, or what to keep in mind about the ones listed.
    notes: list[str] = field(default_factory=list)


def format_run(moment: datetime) -> str:
    """'Sun 2025-03-09 03:30 EDT (UTC-04:00)'"""
    offset = moment.strftime("%z")
    return f"{moment:%a %Y-%m-%d %H:%M} {moment.tzname()} (UTC{offset[:3]}:{offset[3:]})"


def _span(delta: timedelta) -> str:
    minutes = abs(int(delta.total_seconds())) // 60
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    if hours:
        return "1 hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minutes"


def _listed(times: list[str]) -> str:
    shown = ", ".join(times[:_TIMES_SHOWN])
    hidden = len(times) - _TIMES_SHOWN
    return f"{shown} and {hidden} more" if hidden > 0 else shown


# --- Crontab -------------------------------------------------------------------------------------


def crontab_preview(
    spec: CrontabSpec,
    zone: ZoneInfo,
    *,
    now: datetime,
    count: int = PREVIEW_COUNT,
    until: datetime | None = None,
) -> tuple[list[datetime], list[str]]:
    """The next `count` runs after `now` (none after `until`) and the DST warnings about them."""
    runs: list[datetime] = []
    for run in crontab_runs(spec, zone, after=now):
        if until is not None and run > until:
            break
        runs.append(run)
        if len(runs) == count:
            break
    if not runs:
        return runs, []
    return runs, crontab_dst_warnings(spec, zone, after=now, until=runs[-1])


def crontab_dst_warnings(
    spec: CrontabSpec, zone: ZoneInfo, *, after: datetime, until: datetime
) -> list[str]:
    """Warnings for the scheduled wall times in (after, until] that a DST change moves,
    merges into another run, or repeats."""
    found, jump = _dst_changes(spec, zone, after=after, until=until)
    return [
        _dst_warning(zone, day=day, outcome=outcome, pairs=pairs, gap=_span(jump[day]))
        for (day, outcome), pairs in found.items()
    ]


def _dst_changes(
    spec: CrontabSpec, zone: ZoneInfo, *, after: datetime, until: datetime
) -> tuple[dict[tuple[date, str], list[tuple[datetime, datetime]]], dict[date, timedelta]]:
    """(day, outcome) -> the (wall time, run) pairs it applies to, in (after, until]; outcomes:
    moved, merged, repeated. And day -> how far the clocks jump that day."""
    sets = crontab_sets(spec)
    scheduled = {(hour, minute) for hour in sets.hours for minute in sets.minutes}
    found: dict[tuple[date, str], list[tuple[datetime, datetime]]] = {}
    jump: dict[date, timedelta] = {}
    start, end = after.astimezone(UTC), until.astimezone(UTC)
    day = after.astimezone(zone).date() - timedelta(days=1)
    last_day = until.astimezone(zone).date()
    while day <= last_day:
        if (
            day.month in sets.months
            and day.day in sets.days_of_month
            and (day.isoweekday() % 7) in sets.days_of_week
        ):
            for hour, minute in sorted(scheduled):
                wall = datetime.combine(day, time(hour, minute))
                first_offset = wall.replace(tzinfo=zone, fold=0).utcoffset()
                second_offset = wall.replace(tzinfo=zone, fold=1).utcoffset()
                if first_offset is None or second_offset is None or first_offset == second_offset:
                    continue
                run = resolve_wall_time(wall, zone)
                repeated = run.replace(tzinfo=None) == wall
                # Compared in UTC: datetimes in one zone compare by wall time, ignoring fold.
                instants = [run.astimezone(UTC)]
                if repeated:  # its second instant gets no run: in the window, that is news too
                    instants.append(wall.replace(tzinfo=zone, fold=1).astimezone(UTC))
                if not any(start < instant <= end for instant in instants):
                    continue
                jump[day] = abs(second_offset - first_offset)
                if repeated:
                    outcome = "repeated"
                elif (run.hour, run.minute) in scheduled:
                    outcome = "merged"
                else:
                    outcome = "moved"
                found.setdefault((day, outcome), []).append((wall, run))
        day += timedelta(days=1)
    return found, jump


def _dst_warning(
    zone: ZoneInfo,
    *,
    day: date,
    outcome: str,
    pairs: list[tuple[datetime, datetime]],
    gap: str,
) -> str:
    """One warning: on `day`, the wall times of `pairs` (with their runs) `outcome`."""
    when = f"{day:%a %Y-%m-%d}"
    walls = _listed([f"{wall:%H:%M}" for wall, _ in pairs])
    runs = _listed([f"{run:%H:%M %Z}" for _, run in pairs])
    one = len(pairs) == 1
    if outcome == "repeated":
        return (
            f"DST: on {when} clocks in {zone.key} go back {gap}, so {walls} "
            f"{'happens' if one else 'happen'} twice that day: the job runs once, at the "
            f"first ({pairs[0][1]:%Z}), and not in the repeated hour."
        )
    exists = "does not exist" if one else "do not exist"
    if outcome == "moved":
        return (
            f"DST: on {when} clocks in {zone.key} go forward {gap}, so {walls} {exists} "
            f"that day: the run happens at {runs} instead."
        )
    return (
        f"DST: on {when} clocks in {zone.key} go forward {gap}, so {walls} {exists} "
        f"that day: {'that run is' if one else 'those runs are'} skipped (already due "
        f"at {runs})."
    )


# --- Interval and one-off ------------------------------------------------------------------------


def interval_preview(
    seconds: float,
    zone: ZoneInfo,
    *,
    now: datetime,
    last_run_at: datetime | None = None,
    count: int = PREVIEW_COUNT,
    until: datetime | None = None,
) -> tuple[list[datetime], list[str]]:
    """Runs every `seconds`, counted from the last run as beat counts them (from now if none)."""
    step = timedelta(seconds=seconds)
    if step <= timedelta(0):
        return [], []
    start = last_run_at if last_run_at is not None and last_run_at <= now else now
    # The first step past now, without walking a long history one step at a time.
    first = int((now - start) / step) + 1
    runs = []
    for k in range(first, first + count):
        run = (start + step * k).astimezone(zone)
        if until is not None and run > until:
            break
        runs.append(run)
    # The last run counts too: staff compare the next runs' wall time with it.
    seen = [start.astimezone(zone), *runs] if start is not now else runs
    return runs, interval_dst_warnings(seen, step, zone)


def interval_dst_warnings(runs: Iterable[datetime], step: timedelta, zone: ZoneInfo) -> list[str]:
    """An interval counts real time: across a DST change its runs move on the wall clock."""
    if step < timedelta(hours=1):
        return []  # runs a few minutes apart: nobody reads them as wall-clock times
    warnings = []
    for before, after in pairwise(runs):
        before_offset, after_offset = before.utcoffset(), after.utcoffset()
        if before_offset is None or after_offset is None or before_offset == after_offset:
            continue
        direction = "forward" if after_offset > before_offset else "back"
        warnings.append(
            f"DST: clocks in {zone.key} go {direction} {_span(after_offset - before_offset)} "
            f"between {format_run(before)} and {format_run(after)}; the interval counts real "
            "time, so from then on the runs come at a different wall-clock time."
        )
    return warnings


def parsed_warnings(parsed: ParsedSchedule, *, now: datetime, runs: list[datetime]) -> list[str]:
    """The DST warnings about the `runs` a parsed schedule makes after `now` (`scheduler parse`
    prints them, as the admin's preview does)."""
    if not runs:
        return []
    if parsed.crontab is not None:
        return crontab_dst_warnings(parsed.crontab, parsed.zone, after=now, until=runs[-1])
    if parsed.interval is not None:
        step = timedelta(seconds=parsed.interval.seconds)
        return interval_dst_warnings([now.astimezone(parsed.zone), *runs], step, parsed.zone)
    return []


# --- A periodic task row -------------------------------------------------------------------------


def periodic_task_preview(
    periodic_task: PeriodicTask, *, now: datetime, count: int = PREVIEW_COUNT
) -> Preview:
    """The next `count` runs of a saved periodic task, in its time zone, with warnings."""
    options = options_of(periodic_task)
    crontab = periodic_task.crontab
    zone_name = str(crontab.timezone) if crontab is not None else "UTC"
    if crontab is None and options is not None and options.timezone:
        zone_name = options.timezone
    try:
        zone = zone_named(zone_name)
    except ScheduleParseError as exc:
        return Preview(timezone=zone_name, notes=[str(exc)])
    notes: list[str] = []
    if not periodic_task.enabled:
        notes.append("The task is disabled: none of these runs happen until it is enabled.")
    if periodic_task.one_off and periodic_task.last_run_at is not None:
        return Preview(timezone=zone.key, notes=[*notes, "A one-off task that has already run."])
    start = now
    if periodic_task.start_time is not None and periodic_task.start_time > now:
        start = periodic_task.start_time
        notes.append(f"The schedule starts at {format_run(start.astimezone(zone))}.")
    until = periodic_task.expires
    if until is not None and until <= now:
        return Preview(timezone=zone.key, notes=[*notes, "The schedule has expired."])

    runs: list[datetime] = []
    warnings: list[str] = []
    if crontab is not None:
        spec = crontab_spec_of(crontab)
        try:
            runs, warnings = crontab_preview(spec, zone, now=start, count=count, until=until)
        except ScheduleParseError as exc:
            notes.append(f"No preview: {exc}")
    elif periodic_task.interval is not None:
        interval = periodic_task.interval
        seconds = interval.every * _PERIOD_SECONDS.get(interval.period, 0.0)
        runs, warnings = interval_preview(
            seconds,
            zone,
            now=start,
            last_run_at=periodic_task.last_run_at,
            count=count,
            until=until,
        )
    elif periodic_task.clocked is not None:
        moment = periodic_task.clocked.clocked_time
        if moment > now and (until is None or moment <= until):
            runs = [moment.astimezone(zone)]
        else:
            notes.append("The one-off time is in the past.")
    elif periodic_task.solar is not None:
        notes.append("No preview for solar schedules: their times depend on the sun.")
    else:
        notes.append("No schedule.")
    if not runs and not notes:
        notes.append("No run is due.")
    return Preview(timezone=zone.key, runs=runs, warnings=warnings, notes=notes)
