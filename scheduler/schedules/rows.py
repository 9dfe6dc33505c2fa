"""A periodic task's schedule read from its django-celery-beat rows: its cron fields, its next
runs (the one function every display uses; beat computes the same from the same rows) and its
description in words. Reads the rows it is given; no queries of its own beyond their relations.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone

from scheduler.schedules.parsing import (
    CrontabSpec,
    IntervalSpec,
    ParsedSchedule,
    Period,
    ScheduleParseError,
    crontab_runs,
    describe_crontab,
    describe_interval,
    describe_one_off,
    parse_schedule,
    zone_named,
)
from scheduler.schedules.policies import CatchUp
from scheduler.schedules.timing import Timing, Upcoming, upcoming

if TYPE_CHECKING:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask


def options_of(periodic_task: PeriodicTask) -> Any:
    """The task's `ScheduleOptions`, or None for a row made in the stock admin."""
    try:
        return cast(Any, periodic_task).options
    except ObjectDoesNotExist:
        return None


def crontab_spec_of(row: CrontabSchedule) -> CrontabSpec:
    """The five cron fields of a django-celery-beat crontab row (its zone is not part of them)."""
    # str(): an unsaved row built in code may hold ints where the columns hold text.
    return CrontabSpec(
        minute=str(row.minute),
        hour=str(row.hour),
        day_of_week=str(row.day_of_week),
        day_of_month=str(row.day_of_month),
        month_of_year=str(row.month_of_year),
    )


def periodic_task_schedule(
    periodic_task: PeriodicTask, *, describe: bool = True
) -> ParsedSchedule | None:
    """The schedule beat runs, read from the schedule rows (not the phrase): None for solar.

    The rows, not `ScheduleOptions.phrase`, are the truth: a relative one-off ('in 5 minutes')
    read again later would move, and staff may have edited the stock fields in the admin.
    `describe=False` leaves its description empty: putting a schedule in words costs more than
    its next runs, which is all the lists of schedules ask of it per row.
    """
    description = schedule_describe(periodic_task) if describe else ""
    options = getattr(periodic_task, "options", None)  # None: a row made in the stock admin
    tz = options.timezone if options is not None else "UTC"
    if periodic_task.interval is not None:
        interval = periodic_task.interval
        if interval.period not in ("days", "hours", "minutes", "seconds"):
            return None  # microseconds: a hand-made row
        return ParsedSchedule(
            kind="interval",
            timezone=tz,
            description=description,
            interval=IntervalSpec(every=interval.every, period=cast("Period", interval.period)),
        )
    if periodic_task.crontab is not None:
        row = periodic_task.crontab
        return ParsedSchedule(
            kind="crontab",
            timezone=str(row.timezone),
            description=description,
            crontab=crontab_spec_of(row),
        )
    if periodic_task.clocked is not None:
        return ParsedSchedule(
            kind="clocked",
            timezone=tz,
            description=description,
            clocked=periodic_task.clocked.clocked_time,
        )
    return None


def periodic_task_timing(
    periodic_task: PeriodicTask, *, now: datetime | None = None
) -> Timing | None:
    """What decides when `periodic_task` runs (scheduler/schedules/timing.py), read from its
    rows as beat reads them; None for a schedule beat runs by Celery's own rules (solar)."""
    schedule = periodic_task_schedule(periodic_task, describe=False)
    if schedule is None:
        return None
    options = options_of(periodic_task)
    last_run_at = periodic_task.last_run_at
    ran = last_run_at is not None or bool(periodic_task.total_run_count)
    # Never run: counted from when it was saved (not yet saved: from now), as beat counts; a
    # look from before it was saved (a simulated clock) counts from then.
    now = now or timezone.now()
    saved = periodic_task.date_changed
    anchor = last_run_at or (min(saved, now) if saved is not None else now)
    remaining = options.remaining_runs if options is not None else None
    if periodic_task.one_off or periodic_task.clocked is not None:
        left = 0 if periodic_task.total_run_count else 1
        remaining = left if remaining is None else min(remaining, left)
    return Timing(
        key=periodic_task.pk or 0,
        schedule=schedule,
        anchor=anchor,
        ran=ran,
        start=periodic_task.start_time,
        end=periodic_task.expires,
        remaining=remaining,
        jitter=options.jitter if options is not None else 0,
        catchup=options.catchup if options is not None else CatchUp.LATEST.value,
        catchup_window=options.catchup_window if options is not None else None,
    )


def periodic_task_upcoming(
    periodic_task: PeriodicTask,
    *,
    count: int,
    now: datetime | None = None,
    until: datetime | None = None,
) -> list[Upcoming]:
    """The next runs beat will make of `periodic_task` (due time, and when each goes out), at
    most `count` and none going out after `until`: the one computation every display and beat
    share (scheduler/schedules/timing.py). Empty when disabled (unless paused until a time:
    then its runs from that time on), spent or unknown."""
    return _upcoming(periodic_task, count=count, now=now, until=until)[1]


def _upcoming(
    periodic_task: PeriodicTask, *, count: int, now: datetime | None, until: datetime | None
) -> tuple[Timing | None, list[Upcoming]]:
    now = now or timezone.now()
    timing = periodic_task_timing(periodic_task, now=now)
    if timing is None:
        return None, []
    if not periodic_task.enabled:
        options = options_of(periodic_task)
        paused_until = options.paused_until if options is not None else None
        if paused_until is None:
            return timing, []
        # Resumed by itself at `paused_until`, counting on from there (runs missed while it was
        # paused are not made): scheduler/services/pauses.py.
        timing = replace(timing, anchor=max(paused_until, timing.anchor), ran=True)
        now = max(now, paused_until)
    return timing, upcoming(timing, now, count=count, until=until)


def periodic_task_next_runs(
    periodic_task: PeriodicTask,
    *,
    count: int,
    now: datetime | None = None,
    until: datetime | None = None,
) -> list[datetime]:
    """When beat will next publish runs of `periodic_task` (their jitter included), in the
    schedule's zone: see `periodic_task_upcoming`."""
    timing, runs = _upcoming(periodic_task, count=count, now=now, until=until)
    if timing is None:
        return []
    zone = timing.schedule.zone
    return [run.at.astimezone(zone) for run in runs]


def schedule_describe(periodic_task: PeriodicTask) -> str:
    """What the schedule of a periodic task is, in words (also for rows made in the stock admin)."""
    options = options_of(periodic_task)
    # A one-off's phrase may be relative ('in 5 minutes'): read again now, it would move.
    if options is not None and options.phrase and periodic_task.clocked is None:
        try:
            return parse_schedule(options.phrase, tz=options.timezone).description
        except ScheduleParseError:
            pass
    if periodic_task.interval is not None:
        interval = periodic_task.interval
        if interval.period not in ("days", "hours", "minutes", "seconds"):
            return f"every {interval.every} {interval.period}"
        period = cast("Period", interval.period)
        return describe_interval(IntervalSpec(every=interval.every, period=period))
    if periodic_task.crontab is not None:
        row = periodic_task.crontab
        spec = crontab_spec_of(row)
        try:
            return f"{describe_crontab(spec)} ({row.timezone})"
        except Exception:  # a hand-made row cron-descriptor cannot read
            return spec.expression
    if periodic_task.clocked is not None:
        zone_name = options.timezone if options is not None else "UTC"
        try:
            zone = zone_named(zone_name or "UTC")
        except ScheduleParseError:
            zone = zone_named("UTC")
        return describe_one_off(periodic_task.clocked.clocked_time, zone)
    return stock_schedule(periodic_task)


def stock_schedule(periodic_task: PeriodicTask) -> str:
    for field in ("interval", "crontab", "clocked", "solar"):
        row = getattr(periodic_task, field)
        if row is not None:
            return str(row)
    return ""


# --- A range of due times (backfills) ------------------------------------------------------------


def periodic_task_times_between(
    periodic_task: PeriodicTask, start: datetime, end: datetime, limit: int
) -> list[datetime]:
    """The schedule's due times in [start, end], in order, in its zone: at most `limit + 1`, so
    that a caller can tell a range over its limit without listing all of it.

    The times beat makes, whether or not the schedule is enabled, started or expired: a
    crontab's in its zone (a wall time in a DST gap shifted past it, one in a fold once, as
    `crontab_runs` resolves them); an interval's on the grid beat steps along, through its last
    run (else its last change), back and forth by the interval; a one-off's time when inside.
    None for solar schedules and hand-made rows (microsecond intervals).
    """
    return list(itertools.islice(_times_between(periodic_task, start, end), max(limit, 0) + 1))


def periodic_task_times_count(
    periodic_task: PeriodicTask, start: datetime, end: datetime, *, cap: int
) -> int:
    """How many due times `periodic_task_times_between` finds in [start, end]: exact for an
    interval (counted, not listed), else counted up to `cap + 1` (more than `cap`)."""
    schedule = periodic_task_schedule(periodic_task, describe=False)
    if schedule is not None and schedule.interval is not None:
        step = timedelta(seconds=schedule.interval.seconds)
        anchor = interval_anchor(periodic_task, start)
        first, last = _steps_after(anchor, start, step), (end - anchor) // step
        return max(last - first + 1, 0)
    times = itertools.islice(_times_between(periodic_task, start, end), cap + 1)
    return sum(1 for _ in times)


def interval_anchor(periodic_task: PeriodicTask, default: datetime) -> datetime:
    """A time on the grid of an interval schedule: beat counts the next run from the last one,
    and a schedule that never ran from when it was saved."""
    return periodic_task.last_run_at or periodic_task.date_changed or default


def _steps_after(anchor: datetime, moment: datetime, step: timedelta) -> int:
    """The first k with anchor + k * step at or after `moment` (whole steps, no rounding)."""
    return -((anchor - moment) // step)


def _times_between(
    periodic_task: PeriodicTask, start: datetime, end: datetime
) -> Iterator[datetime]:
    if end < start:
        return
    schedule = periodic_task_schedule(periodic_task, describe=False)
    if schedule is None:
        return
    zone = schedule.zone
    if schedule.interval is not None:
        step = timedelta(seconds=schedule.interval.seconds)
        anchor = interval_anchor(periodic_task, start)
        k = _steps_after(anchor, start, step)
        try:
            while (run := anchor + step * k) <= end:
                yield run.astimezone(zone)
                k += 1
        except OverflowError:
            return  # past the end of the calendar
    elif schedule.crontab is not None:
        # Strictly after the instant before `start`: a run at `start` itself is in the range.
        try:
            after = start - timedelta(microseconds=1)
        except OverflowError:
            after = start  # the calendar's first instant: no run can be at it
        for run in crontab_runs(schedule.crontab, zone, after=after):
            if run > end:
                return
            yield run
    elif schedule.clocked is not None and start <= schedule.clocked <= end:
        yield schedule.clocked.astimezone(zone)
