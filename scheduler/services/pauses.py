"""Pauses of schedules: who paused one, why, and until when; resumed by staff, or by itself.

- `schedule_pause` / `schedules_pause`: disable with a note and an optional end ("until": a
  moment, or a duration from now such as "2h"; one in the past is refused, naming `until`).
- `schedule_resume` / `schedules_resume`: enable again and forget the pause. The runs missed
  while paused are not made (`resumed_last_run` says how). A plain enable or disable
  (services/schedules.py) ends a pause too, and keeps beat's own semantics for the next run.
- `schedules_resume_due`: the schedules whose end has passed, resumed as the system. The watcher
  thread in every worker and beat runs it every SCHEDULE_RESUME_INTERVAL seconds
  (scheduler/system/alerting.py); one indexed read when no pause has ended.
- `schedule_run_ended`: a schedule with `pause_after_failures` = N pauses itself after N failed
  runs in a row (the last failure of a run, after its retries), as the system, and opens an
  incident on the rules that watch its failures; a success in between starts the count again.
  Subscribed to run events (scheduler/system/alert_wiring.py): it runs in the worker, after the
  run's result is stored. Schedules without the setting cost no query but once every few seconds
  per process (`_PauseSettings`), and no write.

A pause is audited as a disable (or an update of a pause) and recorded as a `schedule.paused`
event; a resume as an enable and a `schedule.resumed` event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from scheduler.beat.changes import notify_beat
from scheduler.catalog import load_catalog
from scheduler.models import AuditEntry, ScheduleOptions, Source
from scheduler.protocol import EventPayload, EventType
from scheduler.schedules.pauses import (
    Pause,
    PauseUntilError,
    pause_of,
    pause_until_checked,
    pause_until_read,
)
from scheduler.schedules.rows import options_of
from scheduler.services.audit import actor_of, audit_write, schedule_event
from scheduler.services.errors import ScheduleError, User
from scheduler.services.incidents import schedule_paused_alert, schedule_paused_recover
from scheduler.services.schedules import pause_clear, schedule_get

logger = logging.getLogger(__name__)

NOTE_MAX_LENGTH = 2000
# Failed runs in a row before a schedule pauses itself: 1 to this.
PAUSE_AFTER_MAX = 1000
# Pauses ended since the last look that one look resumes (the next look takes the rest).
RESUME_BATCH = 100


# --- Pause ---------------------------------------------------------------------------------------


def _checked_input(
    note: str, until: datetime | str | None, *, now: datetime, tz: str | None
) -> tuple[str, datetime | None]:
    """The note and the end of a pause, or ScheduleError naming `note` and `until`."""
    errors: dict[str, list[str]] = {}
    note = (note or "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        errors["note"] = [f"is longer than {NOTE_MAX_LENGTH} characters"]
    end: datetime | None = None
    try:
        if isinstance(until, datetime):
            end = pause_until_checked(until, now=now)
        elif until is not None and until.strip():
            end = pause_until_read(until, now=now, tz=tz or timezone.get_current_timezone_name())
    except PauseUntilError as exc:
        errors["until"] = [str(exc)]
    if errors:
        raise ScheduleError(errors)
    return note, end


def _locked(names: Iterable[str]) -> list[PeriodicTask]:
    # of=self: PostgreSQL cannot lock the nullable side of the outer join to the options.
    return list(
        PeriodicTask.objects.select_for_update(of=("self",))
        .select_related("options__paused_by")
        .filter(name__in=list(names))
        .order_by("pk")
    )


def _outside_catalog(rows: list[PeriodicTask]) -> list[PeriodicTask]:
    catalog = load_catalog()
    return [row for row in rows if row.task not in catalog]


def _changed_beat(pks: list[int]) -> None:
    # Queryset updates send no save signals: tell beat which rows changed (and move
    # django-celery-beat's marker, for any other scheduler reading these tables).
    PeriodicTasks.update_changed()
    notify_beat(tasks=pks)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@transaction.atomic
def schedules_pause(
    *,
    names: Iterable[str],
    note: str = "",
    until: datetime | str | None = None,
    tz: str | None = None,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
    now: datetime | None = None,
) -> int:
    """Pause the periodic tasks named: disabled, with who paused them (`actor`, else
    `actor_name`; neither: the system), `note` and when they resume by themselves (`until`: a
    moment, or text as staff write it, a duration such as "2h" or a date and time read in `tz`,
    default the current zone; None: until resumed). A paused one gets the new note and end.
    How many were paused or changed; ScheduleError (naming `note` or `until`) and nothing
    paused on bad input."""
    now = now or timezone.now()
    note, end = _checked_input(note, until, now=now, tz=tz)
    rows = _locked(names)
    if end is not None and (outside := _outside_catalog(rows)):
        listed = ", ".join(repr(row.name) for row in outside)
        raise ScheduleError.on(
            "until",
            f"{listed} run a task outside the catalog: such a schedule can be paused but not "
            "resumed, so not until a time; leave the end empty. Nothing was paused.",
        )
    if not rows:
        return 0
    pks = [row.pk for row in rows]
    missing = [row for row in rows if options_of(row) is None]
    ScheduleOptions.objects.bulk_create(
        [ScheduleOptions(periodic_task=row) for row in missing], ignore_conflicts=True
    )
    # last_run_at emptied as PeriodicTask.save() does for a disabled task.
    PeriodicTask.objects.filter(pk__in=pks).update(enabled=False, last_run_at=None)
    ScheduleOptions.objects.filter(periodic_task_id__in=pks).update(
        paused_at=now,
        paused_by=actor_of(actor),
        paused_by_name="" if actor_of(actor) is not None else actor_name,
        pause_note=note,
        paused_until=end,
    )
    _changed_beat(pks)
    who = actor_of(actor)
    pause = Pause(
        at=now,
        # A Django user (paused_by), else a command line's OS user (paused_by_name).
        by=who.get_username() if who is not None else (actor_name or None),
        note=note,
        until=end,
    )
    for row in rows:
        _pause_record(row, pause, actor=actor, actor_name=actor_name, source=source)
    return len(rows)


def _pause_record(
    row: PeriodicTask, pause: Pause, *, actor: User, actor_name: str, source: str
) -> None:
    options = options_of(row)
    was = pause_of(row) if options is not None else None
    before = {
        "enabled": row.enabled,
        "paused_by": was.by if was is not None else None,
        "pause_note": was.note if was is not None else "",
        "paused_until": _iso(was.until) if was is not None else None,
    }
    after = {
        "enabled": False,
        "paused_by": pause.by,
        "pause_note": pause.note,
        "paused_until": _iso(pause.until),
    }
    changes = {key: [before[key], value] for key, value in after.items() if before[key] != value}
    audit_write(
        row,
        name=row.name,
        # A new pause, or a new note or end of the pause it is in.
        action=AuditEntry.Action.PAUSED,
        actor=actor,
        actor_name=actor_name,
        source=source,
        changes=changes,
    )
    schedule_event(
        "paused",
        row,
        message=pause.text(),
        source=source,
        paused_by=pause.by,
        note=pause.note,
        until=_iso(pause.until),
    )


def schedule_pause(
    *,
    name: str,
    note: str = "",
    until: datetime | str | None = None,
    tz: str | None = None,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
    now: datetime | None = None,
) -> PeriodicTask:
    """Pause periodic task `name` (see `schedules_pause`); ScheduleNotFound when there is none."""
    schedule_get(name)
    schedules_pause(
        names=[name],
        note=note,
        until=until,
        tz=tz,
        actor=actor,
        actor_name=actor_name,
        source=source,
        now=now,
    )
    return schedule_get(name)


# --- Resume --------------------------------------------------------------------------------------


def resumed_last_run(periodic_task: PeriodicTask, now: datetime) -> datetime | None:
    """The `last_run_at` of a periodic task enabled again at `now`: the runs it missed while
    off are not made.

    Beat (scheduler/beat/scheduler.py, `_entry` and `evaluate`) asks the schedule
    `is_due(last_run_at)`: with `now` the next run is one interval, or the next cron time, after
    the resume. Left empty, beat would count from the row's `date_changed`, which a queryset
    update does not move (due at once after a long pause), or from 30 years back when the row
    has a start time (due at once). Not for a start time still ahead (beat waits for it, and
    its first run is then) nor for a one-off, whose spent state `last_run_at` marks.
    """
    if periodic_task.one_off:
        return periodic_task.last_run_at
    if periodic_task.start_time is not None and periodic_task.start_time > now:
        return None
    return now


@transaction.atomic
def schedules_resume(
    *,
    names: Iterable[str],
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
    now: datetime | None = None,
    ended_by: datetime | None = None,
) -> list[str]:
    """Enable the paused (or disabled) periodic tasks named and forget their pauses; the names
    of those resumed. ScheduleError and nothing resumed when one runs a task outside the
    catalog. `ended_by`: only those whose pause ends by then, as read under the lock (staff may
    have resumed one, or paused it again with a later end, a moment ago)."""
    now = now or timezone.now()
    rows = _locked(names)
    if ended_by is not None:
        rows = [
            row
            for row in rows
            if (options := options_of(row)) is not None
            and options.paused_until is not None
            and options.paused_until <= ended_by
        ]
    stale = [row.pk for row in rows if row.enabled]  # enabled since by a plain enable
    pause_clear(stale)
    rows = [row for row in rows if not row.enabled]
    if not rows:
        return []
    if outside := _outside_catalog(rows):
        listed = ", ".join(repr(row.name) for row in outside)
        tasks = ", ".join(sorted({repr(row.task) for row in outside}))
        raise ScheduleError.on(
            "task",
            f"{listed} run {tasks}, outside the catalog: such schedules can be paused or "
            "deleted, not resumed; nothing was resumed.",
        )
    pks = [row.pk for row in rows]
    last_runs: dict[datetime | None, list[int]] = {}
    for row in rows:
        # Resumed by itself: counted from the end of its pause, as every display showed its
        # next runs (scheduler/schedules/rows.py), not from the moment the watcher came by.
        options = options_of(row)
        ended = options.paused_until if options is not None else None
        since = ended if ended_by is not None and ended is not None else now
        last_runs.setdefault(resumed_last_run(row, since), []).append(row.pk)
    for last_run_at, chosen in last_runs.items():
        PeriodicTask.objects.filter(pk__in=chosen).update(enabled=True, last_run_at=last_run_at)
    pause_clear(pks)
    _changed_beat(pks)
    who = actor_of(actor)
    if ended_by is not None:
        why = "resumed by itself: its pause ended"
    elif who is not None or actor_name:
        why = f"resumed by {who.get_username() if who is not None else actor_name}"
    else:
        why = f"resumed via {source}"
    for row in rows:
        _resume_record(row, why=why, actor=actor, actor_name=actor_name, source=source)
    schedule_paused_recover([row.name for row in rows], why=why)
    return [row.name for row in rows]


def _resume_record(
    row: PeriodicTask, *, why: str, actor: User, actor_name: str, source: str
) -> None:
    options = options_of(row)
    changes: dict[str, Any] = {"enabled": [False, True]}
    if options is not None and options.pause_note:
        changes["pause_note"] = [options.pause_note, ""]
    if options is not None and options.paused_until is not None:
        changes["paused_until"] = [_iso(options.paused_until), None]
    audit_write(
        row,
        name=row.name,
        action=AuditEntry.Action.RESUMED,
        actor=actor,
        actor_name=actor_name,
        source=source,
        changes=changes,
    )
    schedule_event("resumed", row, message=why, source=source)


def schedule_resume(
    *,
    name: str,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
    now: datetime | None = None,
) -> PeriodicTask:
    """Resume periodic task `name` (see `schedules_resume`); ScheduleNotFound when there is
    none. Resuming one that runs is nothing."""
    schedule_get(name)
    schedules_resume(names=[name], actor=actor, actor_name=actor_name, source=source, now=now)
    return schedule_get(name)


def schedules_resume_due(*, now: datetime | None = None, limit: int = RESUME_BATCH) -> list[str]:
    """Resume, as the system, the schedules whose pause ended by `now`; their names.

    The read walks the `paused_until` index from its lowest end: nothing when no pause has
    ended, whatever the number of schedules. One refused (its task left the catalog while it
    was paused) stays paused, without its end, so that it is not tried every round.
    """
    now = now or timezone.now()
    names = list(
        ScheduleOptions.objects.filter(paused_until__lte=now)
        .order_by("paused_until")
        .values_list("periodic_task__name", flat=True)[:limit]
    )
    resumed: list[str] = []
    for name in names:
        try:
            resumed += schedules_resume(names=[name], source=Source.SYSTEM, now=now, ended_by=now)
        except ScheduleError as exc:
            logger.warning("the pause of %r ended, but it cannot be resumed: %s", name, exc)
            ScheduleOptions.objects.filter(periodic_task__name=name).update(paused_until=None)
    return resumed


# --- Pause after failed runs ---------------------------------------------------------------------


@transaction.atomic
def schedule_pause_on_failure(
    *,
    name: str,
    after: int | None,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> PeriodicTask:
    """Set how many failed runs in a row pause periodic task `name` by itself (None: never).
    ScheduleError on `pause_after_failures` for a count out of 1..PAUSE_AFTER_MAX."""
    if after is not None and (
        isinstance(after, bool) or not isinstance(after, int) or not 1 <= after <= PAUSE_AFTER_MAX
    ):
        raise ScheduleError.on(
            "pause_after_failures",
            f"{after!r} is not a number of failed runs from 1 to {PAUSE_AFTER_MAX} "
            "(or none: never)",
        )
    row = _locked([schedule_get(name).name])[0]
    options = options_of(row)
    if options is None:
        options = ScheduleOptions.objects.create(periodic_task=row)
    before = options.pause_after_failures
    if before != after:
        # The count starts again: failures before the setting do not count toward it.
        ScheduleOptions.objects.filter(pk=row.pk).update(
            pause_after_failures=after, failure_streak=0
        )
        changes = {"pause_after_failures": [before, after]}
        audit_write(
            row,
            name=row.name,
            action=AuditEntry.Action.UPDATED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes=changes,
        )
        schedule_event("updated", row, source=source, changes=sorted(changes))
        _settings.forget(row.name)
    return schedule_get(name)


class _PauseSettings:
    """Periodic task name -> its `pause_after_failures`, read again after TTL seconds.

    Every periodic run's end asks; a schedule without the setting must cost nothing. A change
    reaches other processes within TTL seconds (this process's own changes at once).
    """

    TTL = 5.0
    MAX = 10_000

    def __init__(self) -> None:
        self._known: dict[str, tuple[int | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> int | None:
        now = time.monotonic()
        known = self._known.get(name)
        if known is not None and known[1] > now:
            return known[0]
        value = (
            ScheduleOptions.objects.filter(periodic_task__name=name)
            .values_list("pause_after_failures", flat=True)
            .first()
        )
        with self._lock:
            if len(self._known) >= self.MAX:
                self._known.clear()
            self._known[name] = (value, now + self.TTL)
        return value

    def forget(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._known.clear()
            else:
                self._known.pop(name, None)


_settings = _PauseSettings()


def pause_settings_forget() -> None:
    """Read every schedule's `pause_after_failures` again (tests; a change made elsewhere)."""
    _settings.forget()


def schedule_run_ended(event: EventPayload) -> None:
    """Count a periodic run's end toward pausing its schedule (subscribed to `task.failed`,
    the last failure of a run, and `task.succeeded`). Writes only for a schedule with
    `pause_after_failures`: a failure adds one to its streak, a success resets it."""
    name = event["periodic_task_name"]
    if not name or event["type"] not in (EventType.TASK_FAILED, EventType.TASK_SUCCEEDED):
        return
    if _settings.get(name) is None:
        return
    rows = ScheduleOptions.objects.filter(
        periodic_task__name=name, pause_after_failures__isnull=False
    )
    if event["type"] == EventType.TASK_SUCCEEDED:
        rows.filter(failure_streak__gt=0).update(failure_streak=0)
        return
    if rows.update(failure_streak=F("failure_streak") + 1):
        _pause_after_failures(name, event)


@transaction.atomic
def _pause_after_failures(name: str, event: EventPayload) -> None:
    # Locked: of two failures that reach the count together, one pauses it, once.
    row = next(iter(_locked([name])), None)
    options = options_of(row) if row is not None else None
    if row is None or options is None or not row.enabled:
        return  # gone, or paused or disabled already
    limit = options.pause_after_failures
    if limit is None or options.failure_streak < limit:
        return
    what = f"paused after {limit} failed run{'s' if limit != 1 else ''} in a row"
    schedules_pause(names=[name], note=what, source=Source.SYSTEM)
    schedule_paused_alert(event, what=what)
