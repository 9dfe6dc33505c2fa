"""When a schedule runs: the one computation beat publishes by and every display shows.

A schedule's runs are its *due times*: its interval, cron fields or one-off time counted from its
anchor (the due time of its last run, or when it was saved if it never ran), at or after its
start time, before its end time, and at most its remaining runs. Each run goes out
`jitter_offset` seconds after its due time: the same offset for a given run on every beat, so two
beats (or a display and beat) agree on it.

After beat was down, a run is *missed* when it went out more than `GRACE` late. Which missed
runs are made is the catch-up policy: `none` (none of them), `latest` (the latest one, once) or
`all` (each of them, in order), and only those due within the catch-up window before now. A run
due within the grace is on time and made whatever the policy.

Beat calls `plan` when a schedule's next run may be due; displays call `upcoming`, which is
`plan` followed forward. Both read the same `Timing`, built from the rows
(`scheduler.schedules.rows.periodic_task_timing`, beat's own entries).
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from scheduler.schedules.parsing import ParsedSchedule, crontab_runs
from scheduler.schedules.policies import CatchUp

# A run that goes out later than this was missed (beat was down), not the ordinary lag of a tick.
GRACE = timedelta(seconds=60)
# Most missed runs one catch-up makes under `all` (the latest ones); the rest are skipped.
MAX_CATCHUP_RUNS = 1000
# Jitter is at most an hour: longer would blur one run into the next of most schedules.
MAX_JITTER = 3600

# Namespace of the task ids of scheduled runs (run_id).
_RUN_IDS = uuid.UUID("5d0c7a52-3b1e-4f0c-9a4e-2f6b8c1d7e90")


@dataclass(frozen=True, slots=True)
class Timing:
    """Everything that decides when a schedule runs (module docstring)."""

    key: int  # the periodic task's id: it seeds the jitter and names the runs
    schedule: ParsedSchedule  # interval, crontab or clocked
    anchor: datetime  # the due time of its last run; when it was saved if it never ran
    ran: bool = True  # whether `anchor` is a run's due time
    start: datetime | None = None
    end: datetime | None = None  # no run at or after it; beat disables the schedule there
    remaining: int | None = None  # runs it may still make (None: no limit)
    jitter: int = 0  # seconds
    catchup: str = CatchUp.LATEST.value
    catchup_window: int | None = None  # seconds; None: however late


@dataclass(frozen=True, slots=True)
class Plan:
    """What beat does at a moment: publish `runs` (due times, in order), skip `skipped` missed
    runs, move the anchor to `anchor`, and look again at `wait_until`; or, `finished`, disable
    the schedule (after publishing `runs`, if any)."""

    runs: tuple[datetime, ...] = ()
    skipped: int = 0
    anchor: datetime | None = None
    wait_until: datetime | None = None
    finished: str = ""


@dataclass(frozen=True, slots=True)
class Upcoming:
    """One run to come: when it is due, and when it goes out (its jitter added; now, if late)."""

    due: datetime
    at: datetime


def run_id(key: int, due: datetime) -> str:
    """The task id of the run of periodic task `key` due at `due`: whoever publishes it (any
    beat, a backfill), the same run gets the same id, so the workers run it once."""
    return str(uuid.uuid5(_RUN_IDS, f"{key}@{due.timestamp():.6f}"))


def jitter_offset(timing: Timing, due: datetime) -> int:
    """Seconds the run due at `due` goes out late: 0..jitter, a function of the run alone."""
    if timing.jitter <= 0:
        return 0
    digest = hashlib.blake2b(f"{timing.key}@{due.timestamp():.6f}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % (timing.jitter + 1)


def fire_time(timing: Timing, due: datetime) -> datetime:
    return due + timedelta(seconds=jitter_offset(timing, due))


def due_after(timing: Timing, after: datetime) -> datetime | None:
    """The first due time strictly after `after` (and at or after the start time), or None."""
    schedule = timing.schedule
    if schedule.clocked is not None:
        return schedule.clocked if schedule.clocked > after else None
    if schedule.interval is not None:
        step = timedelta(seconds=schedule.interval.seconds)
        try:
            due = after + step
        except OverflowError:
            return None
        if timing.start is not None and due < timing.start:
            # Counted on from the start time, in whole steps from `after`.
            behind = (timing.start - due) // step + (1 if (timing.start - due) % step else 0)
            due += step * behind
        return due
    assert schedule.crontab is not None
    if timing.start is not None and after < timing.start:
        after = timing.start - timedelta(microseconds=1)
    return next(crontab_runs(schedule.crontab, schedule.zone, after=after), None)


def first_due(timing: Timing) -> datetime | None:
    """The due time of the schedule's next run, counted from its anchor."""
    if timing.remaining is not None and timing.remaining <= 0:
        return None
    schedule = timing.schedule
    if schedule.clocked is not None:
        return None if timing.ran else schedule.clocked
    if not timing.ran and timing.start is not None and schedule.interval is not None:
        # Never run, with a start time: the first run is at the start (as django-celery-beat).
        return max(timing.start, timing.anchor)
    return due_after(timing, timing.anchor)


def _series(timing: Timing, first: datetime) -> Iterator[datetime]:
    """Due times from `first` (one) on, in order, before the end time."""
    schedule = timing.schedule
    runs: Iterator[datetime]
    if schedule.interval is not None:
        step = timedelta(seconds=schedule.interval.seconds)
        runs = (first + step * k for k in itertools.count())
    elif schedule.crontab is not None:
        runs = itertools.chain((first,), crontab_runs(schedule.crontab, schedule.zone, after=first))
    else:
        runs = iter((first,))
    for due in runs:
        if timing.end is not None and due >= timing.end:
            return
        yield due


def _dues(timing: Timing, first: datetime, until: datetime) -> Iterator[datetime]:
    """Due times from `first` (one) up to `until`, in order, before the end time."""
    return itertools.takewhile(lambda due: due <= until, _series(timing, first))


# Past this many, the missed runs of a calendar schedule are not counted one by one.
_COUNT_AT_MOST = 200_000


def _latest_due(timing: Timing, first: datetime, until: datetime) -> tuple[datetime, int]:
    """The last due time at or before `until` from `first` (one, at or before it), and how
    many there are from `first` to it."""
    schedule = timing.schedule
    if schedule.interval is not None:
        if timing.end is not None and timing.end <= until:
            until = timing.end - timedelta(microseconds=1)
        step = timedelta(seconds=schedule.interval.seconds)
        count = max((until - first) // step + 1, 1)
        return first + step * (count - 1), count
    latest, count = first, 0
    for due in _dues(timing, first, until):
        latest, count = due, count + 1
        if count >= _COUNT_AT_MOST:
            break
    return latest, max(count, 1)


def _jittered_past_end(timing: Timing, now: datetime) -> bool:
    """Whether a run due before the end time goes out after it (its jitter) and is not late
    yet: it is made, as every display shows it (a run due at or after the end is not)."""
    if timing.end is None or timing.jitter <= 0:
        return False
    due = first_due(timing)
    return due is not None and due < timing.end and now - fire_time(timing, due) <= GRACE


def plan(timing: Timing, now: datetime) -> Plan:
    """What beat does with the schedule at `now` (module docstring)."""
    if timing.remaining is not None and timing.remaining <= 0:
        return Plan(finished="it made its last run (max runs)")
    if timing.end is not None and now >= timing.end and not _jittered_past_end(timing, now):
        return Plan(finished=f"its end time passed ({timing.end.isoformat()})")
    due = first_due(timing)
    if due is None:
        if timing.schedule.clocked is not None:
            return Plan(finished="one-off task already ran")
        return Plan(finished="it has no run after its last")
    if timing.end is not None and due >= timing.end:
        if now >= timing.end:
            return Plan(finished=f"its end time passed ({timing.end.isoformat()})")
        return Plan(wait_until=timing.end)
    fire = fire_time(timing, due)
    if now < fire:
        return Plan(wait_until=fire)
    if timing.schedule.clocked is not None:
        return Plan(runs=(due,), anchor=due)  # a one-off runs however late it is
    following = due_after(timing, due)
    if following is None or following > now or (timing.end is not None and following >= timing.end):
        # The one due run (beat's every tick but after downtime): no walk over missed ones.
        latest, count = due, 1
        on_time = now - fire <= GRACE
    else:
        latest, count = _latest_due(timing, due, now)
        on_time = now - fire_time(timing, latest) <= GRACE
        if fire_time(timing, latest) > now:  # its jitter has not elapsed: only those before it
            latest, count = _latest_due(timing, due, latest - timedelta(microseconds=1))
            on_time = now - fire_time(timing, latest) <= GRACE
    window = timing.catchup_window
    within = window is None or (now - latest) <= timedelta(seconds=window)
    runs: list[datetime]
    if count == 1 and on_time:
        runs = [latest]
    elif timing.catchup == CatchUp.ALL:
        oldest = now - timedelta(seconds=window) if window is not None else due
        runs = []
        for run in _dues(timing, due, latest):
            if run >= oldest:
                runs.append(run)
                if len(runs) > MAX_CATCHUP_RUNS:
                    runs.pop(0)  # keep the latest ones
    elif timing.catchup == CatchUp.LATEST or on_time:
        runs = [latest] if (within or on_time) else []
    else:
        runs = []
    if timing.remaining is not None:
        runs = runs[: timing.remaining]
    return Plan(runs=tuple(runs), skipped=count - len(runs), anchor=latest)


def upcoming(
    timing: Timing, now: datetime, *, count: int, until: datetime | None = None
) -> list[Upcoming]:
    """The next `count` runs beat will make from `now` on (none after `until`)."""
    runs: list[Upcoming] = []
    if count <= 0:
        return runs
    step = plan(timing, now)
    for late in step.runs:  # due now (late or on time): they go out at once
        runs.append(Upcoming(due=late, at=max(fire_time(timing, late), now)))
    if step.finished:
        return _until(runs, until)[:count]
    remaining = None if timing.remaining is None else timing.remaining - len(step.runs)
    anchor = step.anchor if step.anchor is not None else timing.anchor
    ran = timing.ran or step.anchor is not None
    following = replace(timing, anchor=anchor, ran=ran, remaining=remaining)
    due = first_due(following)
    while due is not None and len(runs) < count:
        if timing.end is not None and due >= timing.end:
            break
        if remaining is not None and remaining <= 0:
            break
        at = fire_time(timing, due)
        if until is not None and at > until:
            break
        runs.append(Upcoming(due=due, at=max(at, now)))
        if remaining is not None:
            remaining -= 1
        if timing.schedule.clocked is not None:
            break
        due = due_after(timing, due)
    return _until(runs, until)[:count]


def _until(runs: list[Upcoming], until: datetime | None) -> list[Upcoming]:
    return runs if until is None else [run for run in runs if run.at <= until]
