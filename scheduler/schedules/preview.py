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

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any
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
from scheduler.schedules.policies import CATCHUP_PRESETS, CatchUp, MisfirePolicy, OverlapPolicy
from scheduler.schedules.rows import (
    crontab_spec_of,
    options_of,
    periodic_task_next_runs,
    periodic_task_schedule,
)

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

PREVIEW_COUNT = 5
# The runs listed while a schedule is edited (the admin's form) and in its change page.
SCHEDULE_PREVIEW_RUNS = 10
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


# --- Policies in words, and the preview of a schedule being edited -------------------------------

_OVERLAP_EFFECTS = {
    OverlapPolicy.ALLOW: "a run starts even while the previous one still runs",
    OverlapPolicy.SKIP: "a run due while the previous one still runs is skipped",
    OverlapPolicy.BUFFER_ONE: (
        "a run that starts while the previous one runs waits for it; further ones are dropped"
    ),
    OverlapPolicy.BUFFER_ALL: (
        "runs that start while the previous one runs wait for it, then run one by one in order"
    ),
    OverlapPolicy.CANCEL_OTHER: (
        "a new run asks the running one to stop (cooperatively, as a soft time limit does), "
        "then starts"
    ),
    OverlapPolicy.TERMINATE_OTHER: "a new run terminates the running one at once, then starts",
}


def duration_words(seconds: int) -> str:
    """'30 s', '5 minutes', '1 hour', '2 days'; mixed units short: '1 h 30 min', '1 day 6 h'."""
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if not hours and not minutes and not secs and days:
        return f"{days} day" if days == 1 else f"{days} days"
    if not days and not minutes and not secs and hours:
        return f"{hours} hour" if hours == 1 else f"{hours} hours"
    if not days and not hours and not secs and minutes:
        return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
    parts = [f"{days} day" + ("s" if days > 1 else "")] if days else []
    parts += [f"{n} {unit}" for n, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if n]
    return " ".join(parts) or "0 s"


def _the_last(seconds: int) -> str:
    """'the last hour', 'the last 2 hours', 'the last 1 h 30 min'."""
    words = duration_words(seconds)
    if words in ("1 day", "1 hour", "1 minute"):
        return f"the last {words[2:]}"
    return f"the last {words}"


def _catchup_effect(catchup: str, window: int | None) -> str:
    if catchup == CatchUp.NONE:
        return (
            "catch-up none: runs missed while beat was down are not made; the schedule waits "
            "for its next due time"
        )
    within = "" if window is None else f" within {duration_words(window)}"
    if window == 0:
        return f"catch-up {catchup}{within}: runs missed while beat was down are not made"
    if catchup == CatchUp.ALL:
        what = "every missed run"
        tail = ", in order"
    else:
        what = "the latest missed run"
        tail = ", once" if window is None else ""
    if window is None:
        return f"catch-up {catchup}: after beat was down, {what} is made however late{tail}"
    return (
        f"catch-up {catchup}{within}: after beat was down, {what} within {_the_last(window)} "
        f"is made{tail}"
    )


def _runs(count: int) -> str:
    return "1 run" if count == 1 else f"{count} runs"


def policy_effects(
    *,
    overlap: str,
    task_overlap: str | None = None,
    catchup: str,
    catchup_window: int | None,
    jitter: int = 0,
    max_runs: int | None = None,
    remaining_runs: int | None = None,
    one_off: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    zone: ZoneInfo,
) -> list[str]:
    """A schedule's policies in words, one line each, as staff read them before saving.

    `overlap` is the schedule's own policy; for `default`, `task_overlap` is the policy its
    catalog task declares now (None: unknown, e.g. no task chosen yet). `start` and `end` are
    its start and end times (pass `start` only while it is ahead)."""
    effects = []
    if overlap == OverlapPolicy.DEFAULT:
        if task_overlap is None or task_overlap == OverlapPolicy.DEFAULT:
            effects.append("overlap: the task's default (choose a task to see it)")
        else:
            effects.append(
                f"overlap {task_overlap} (the task's default): "
                f"{_OVERLAP_EFFECTS[OverlapPolicy(task_overlap)]}"
            )
    else:
        effects.append(f"overlap {overlap}: {_OVERLAP_EFFECTS[OverlapPolicy(overlap)]}")
    effects.append(_catchup_effect(catchup, catchup_window))
    if jitter:
        span = duration_words(jitter)
        effects.append(
            f"jitter up to {span}: each run goes out up to {span} after its due time (the same "
            "delay whichever beat sends it)"
        )
    if start is not None:
        effects.append(f"starts on {format_run(start.astimezone(zone))} (start time)")
    if one_off:
        effects.append("one-off: runs once, then is disabled")
    if max_runs is not None:
        left = max_runs if remaining_runs is None else remaining_runs
        if left == 0:
            effects.append(f"max runs {max_runs} reached: no more runs (beat disabled it)")
        elif left == max_runs:
            effects.append(f"ends after {_runs(max_runs)} (max runs)")
        else:
            effects.append(f"ends after {left} more of {_runs(max_runs)} (max runs)")
    if end is not None:
        effects.append(f"ends on {format_run(end.astimezone(zone))} (end time)")
    return effects


def format_utc(moment: datetime) -> str:
    """'Sun 2025-03-09 07:30 UTC'"""
    return f"{moment.astimezone(UTC):%a %Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class SchedulePreview:
    """What a schedule will do: its next runs (in its zone), the DST warnings about them, its
    policies in words, and why the list stops early (`cutoff`: an end time, max runs)."""

    timezone: str
    description: str = ""
    runs: list[datetime] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    cutoff: str = ""
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "description": self.description,
            "runs": [
                {
                    "at": run.isoformat(),
                    "utc": run.astimezone(UTC).isoformat(),
                    "text": format_run(run),
                    "utc_text": format_utc(run),
                }
                for run in self.runs
            ],
            "warnings": self.warnings,
            "effects": self.effects,
            "cutoff": self.cutoff,
            "notes": self.notes,
        }


def schedule_preview(
    periodic_task: PeriodicTask,
    *,
    now: datetime,
    count: int = SCHEDULE_PREVIEW_RUNS,
    task_overlap: str | None = None,
) -> SchedulePreview:
    """The preview of a periodic task and its options, saved or not (the admin builds unsaved
    ones from the form being edited): runs from `periodic_task_next_runs`, the one next-run
    function, cut at the end time and after the runs left (max runs, one-off).

    `task_overlap`: the overlap policy the task's catalog entry declares, for `default`."""
    options = options_of(periodic_task)
    zone_name = options.timezone if options is not None and options.timezone else "UTC"
    try:
        schedule = periodic_task_schedule(periodic_task)
        zone = zone_named(schedule.timezone if schedule is not None else zone_name)
    except ScheduleParseError as exc:
        return SchedulePreview(timezone=zone_name, notes=[str(exc)])
    start = now
    if periodic_task.start_time is not None and periodic_task.start_time > now:
        start = periodic_task.start_time
    end = periodic_task.expires
    max_runs = options.max_runs if options is not None else None
    remaining = options.remaining_runs if options is not None else None
    if options is not None:
        catchup, window = options.catchup, options.catchup_window
    else:
        catchup, window = CATCHUP_PRESETS[MisfirePolicy.RUN_ONCE]
    effects = policy_effects(
        overlap=options.overlap if options is not None else OverlapPolicy.DEFAULT,
        task_overlap=task_overlap,
        catchup=catchup,
        catchup_window=window,
        jitter=options.jitter if options is not None else 0,
        max_runs=max_runs,
        remaining_runs=remaining,
        one_off=periodic_task.one_off,
        start=start if start > now else None,
        end=end,
        zone=zone,
    )
    preview = _schedule_runs(
        periodic_task,
        schedule=schedule,
        zone=zone,
        now=now,
        start=start,
        count=count,
        left=_runs_left(periodic_task, max_runs=max_runs, remaining=remaining),
    )
    description = schedule.description if schedule is not None else ""
    return SchedulePreview(timezone=zone.key, description=description, effects=effects, **preview)


def _runs_left(
    periodic_task: PeriodicTask, *, max_runs: int | None, remaining: int | None
) -> int | None:
    """How many more runs beat makes (None: no limit): the max runs left; one for a one-off."""
    left = None
    if max_runs is not None:
        left = max_runs if remaining is None else remaining
    if periodic_task.one_off:
        # Beat disables a one-off after its run, whatever its schedule.
        left = 1 if left is None else min(left, 1)
    return left


def _schedule_runs(
    periodic_task: PeriodicTask,
    *,
    schedule: ParsedSchedule | None,
    zone: ZoneInfo,
    now: datetime,
    start: datetime,
    count: int,
    left: int | None,
) -> dict[str, Any]:
    """The runs, warnings, cut-off and notes of `schedule_preview`."""
    notes: list[str] = []
    if schedule is None:
        if periodic_task.solar is not None:
            notes.append("No preview for solar schedules: their times depend on the sun.")
        else:
            notes.append("No schedule.")
        return {"notes": notes}
    if not periodic_task.enabled:
        notes.append("The task is disabled: none of these runs happen until it is enabled.")
    if start > now:
        notes.append(f"The schedule starts at {format_run(start.astimezone(zone))}.")
    end = periodic_task.expires
    if end is not None and end <= now:
        ended = f"The end time, {format_run(end.astimezone(zone))}, has passed: no more runs."
        return {"cutoff": ended, "notes": notes}
    if periodic_task.one_off and periodic_task.total_run_count:
        return {"notes": [*notes, "A one-off task that has already run."]}
    if left == 0:
        return {"cutoff": "No runs left: the schedule made its max runs.", "notes": notes}
    wanted = count if left is None else min(count, left)
    # Disabled, it has no next runs: listed as if enabled, under the note that says it is not.
    shown = periodic_task
    if not periodic_task.enabled:
        shown = copy.copy(periodic_task)
        shown.enabled = True
    runs = [run.astimezone(zone) for run in periodic_task_next_runs(shown, count=wanted, now=start)]
    warnings = parsed_warnings(schedule, now=start, runs=runs)
    cutoff = ""
    if left is not None and left <= count and len(runs) == left and schedule.kind != "clocked":
        why = "it is a one-off" if periodic_task.one_off and left == 1 else "max runs"
        cutoff = f"The list stops after {_runs(left)} ({why}): beat disables the schedule then."
    elif end is not None and len(runs) < wanted:
        # Cut by the end time only if the schedule has a run at or after it.
        after_end = schedule.next_runs(1, now=max(end - timedelta(microseconds=1), start))
        if after_end:
            cutoff = (
                f"The list stops at the end time, {format_run(end.astimezone(zone))}: "
                "no run after it."
            )
    if not runs and not cutoff and count:  # none asked for (`scheduler parse --count 0`)
        notes.append("No run is due.")
    return {"runs": runs, "warnings": warnings, "cutoff": cutoff, "notes": notes}
