"""`scheduler sync`: make the periodic tasks match the schedules declared in code.

Creates what is missing, applies what the code changed, leaves a field staff changed since the
last sync (drift: reported; applied with `force`), and disables, never deletes, a periodic task
whose declaration was removed. Every write goes through the schedule services, audited with
source "code". Idempotent: a second sync changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import transaction
from django_celery_beat.models import PeriodicTask

from scheduler.models import DeclaredState, Source
from scheduler.schedules.declared import (
    DeclaredSchedule,
    declared_schedules,
    differences,
    row_fields,
)
from scheduler.services.errors import ScheduleError, ScheduleNotFound, User
from scheduler.services.runs import task_validate
from scheduler.services.schedule_policies import policies_check
from scheduler.services.schedules import schedule_create, schedule_disable, schedule_update

CREATE, UPDATE, DRIFT, DISABLE, ERROR = "create", "update", "drift", "disable", "error"


@dataclass
class SyncChange:
    """One periodic task sync creates, updates, disables, leaves drifted, or could not apply.

    `fields`: field -> (in the database, in code). `applied`: written (never on a dry run).
    `what`: "schedule", or "channel" and "rule" for alerts (services/declared_alerts.py).
    """

    name: str
    origin: str
    action: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    message: str = ""
    applied: bool = False
    what: str = "schedule"


@dataclass
class SyncReport:
    changes: list[SyncChange]
    unchanged: int

    @property
    def errors(self) -> list[SyncChange]:
        return [change for change in self.changes if change.action == ERROR]

    @property
    def in_sync(self) -> bool:
        return not self.changes


def schedules_sync(
    declarations: Iterable[DeclaredSchedule],
    *,
    force: bool = False,
    dry_run: bool = False,
    prune: bool = True,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.CODE,
) -> SyncReport:
    """Compare every declaration with its periodic task and, unless `dry_run`, apply the plan.

    `prune`: `declarations` are all there are, so a periodic task declared before and not now
    is disabled; False for a part of them (one app's).
    """
    declared = list(declarations)
    rows = {
        row.name: row
        for row in PeriodicTask.objects.filter(name__in=[d.name for d in declared]).select_related(
            "options", "declared", "interval", "crontab", "clocked", "solar"
        )
    }
    changes: list[SyncChange] = []
    normalized: list[DeclaredSchedule] = []
    unchanged = 0
    for given in declared:
        try:
            item = declared_normalized(given)
        except ScheduleError as exc:
            changes.append(SyncChange(given.name, given.origin, ERROR, message=str(exc)))
            continue
        normalized.append(item)
        change = _plan(item, rows.get(item.name), force=force)
        if change is None:
            unchanged += 1
            continue
        if not dry_run:
            _apply(change, item, actor=actor, actor_name=actor_name, source=source)
        changes.append(change)
    if prune:
        changes.extend(
            _removed(
                {d.name for d in declared}, dry_run=dry_run, actor=actor, actor_name=actor_name
            )
        )
    if not dry_run:
        _remember(normalized, changes)
    return SyncReport(changes=changes, unchanged=unchanged)


def declared_normalized(item: DeclaredSchedule) -> DeclaredSchedule:
    """The declaration as the services store it: its parameters with the catalog's defaults
    filled in, its queue the catalog's when it names none, and its policies as
    `declared_policies` reads them; a wrong one is a ScheduleError."""
    checked = task_validate(task=item.task, params=dict(item.params), queue=item.queue)
    return replace(declared_policies(item), params=checked.params, queue=checked.queue)


def declared_policies(item: DeclaredSchedule) -> DeclaredSchedule:
    """`item` with its policies checked as the services check them, and its misfire preset
    replaced by the catch-up it stands for (sync and import compare and write only catchup),
    or a ScheduleError. Its times are checked when written: an end that has passed is refused
    when it is set, not on every sync once the schedule has ended."""
    policies_check(
        {
            "overlap": item.overlap,
            "catchup": item.catchup,
            "catchup_window": item.catchup_window,
            "misfire": item.misfire,
            "jitter": item.jitter,
            "max_runs": item.max_runs,
            "pause_after_failures": item.pause_after_failures,
        },
        tz=item.timezone,
    )
    values = item.fields()
    return replace(
        item,
        misfire=None,
        catchup=values["catchup"],
        catchup_window=values["catchup_window"],
        jitter=values["jitter"],
    )


def _last_synced(row: PeriodicTask) -> dict[str, Any] | None:
    try:
        state: DeclaredState = row.declared
    except DeclaredState.DoesNotExist:
        return None
    return dict(state.fields)


def _plan(item: DeclaredSchedule, row: PeriodicTask | None, *, force: bool) -> SyncChange | None:
    if row is None:
        # Limits left unset (None) would read "null -> null": not listed.
        created = {
            name: (None, value) for name, value in item.fields().items() if value is not None
        }
        return SyncChange(item.name, item.origin, CREATE, created)
    found = differences(item.fields(), row_fields(row), _last_synced(row))
    if force and (found.from_code or found.drift):
        return SyncChange(item.name, item.origin, UPDATE, {**found.from_code, **found.drift})
    if found.from_code:
        # What staff changed stays; it is listed with what the code changed.
        message = _drift_note(found.drift)
        return SyncChange(item.name, item.origin, UPDATE, found.from_code, message)
    if found.drift:
        return SyncChange(item.name, item.origin, DRIFT, found.drift, _drift_note(found.drift))
    return None


def _drift_note(drift: dict[str, tuple[Any, Any]]) -> str:
    if not drift:
        return ""
    return f"changed by staff, kept (--force or reset to code applies the code): {', '.join(drift)}"


def _apply(
    change: SyncChange, item: DeclaredSchedule, *, actor: User, actor_name: str, source: str
) -> None:
    if change.action == DRIFT:
        return
    try:
        with transaction.atomic():
            if change.action == CREATE:
                declared_create(item, actor=actor, actor_name=actor_name, source=source)
            else:
                declared_update(
                    item, list(change.fields), actor=actor, actor_name=actor_name, source=source
                )
    except (ScheduleError, ScheduleNotFound) as exc:
        change.action, change.message = ERROR, str(exc)
        return
    change.applied = True


def declared_create(
    item: DeclaredSchedule, *, actor: User, source: str, actor_name: str = ""
) -> None:
    """Create the periodic task `item` declares (sync, import)."""
    schedule_create(
        name=item.name,
        task=item.task,
        schedule=item.schedule,
        params=dict(item.params),
        tz=item.timezone,
        queue=item.queue,
        description=item.description,
        overlap=item.overlap,
        misfire=item.misfire,
        catchup=item.catchup,
        catchup_window=item.catchup_window,
        jitter=item.jitter,
        start_time=item.start_time,
        end_time=item.end_time,
        max_runs=item.max_runs,
        pause_after_failures=item.pause_after_failures,
        enabled=item.enabled,
        actor=actor,
        actor_name=actor_name,
        source=source,
    )


# Declaration field -> schedule_update's argument.
_ARGUMENTS = {"timezone": "tz"}


def declared_update(
    item: DeclaredSchedule, names: list[str], *, actor: User, source: str, actor_name: str = ""
) -> None:
    """Set the fields `names` of periodic task `item.name` as `item` declares them."""
    values = item.fields()
    arguments = {_ARGUMENTS.get(name, name): values[name] for name in names}
    if "schedule" in arguments or "tz" in arguments:
        # A phrase is read in its zone: both go together.
        arguments.update(schedule=item.schedule, tz=item.timezone)
    schedule_update(name=item.name, actor=actor, actor_name=actor_name, source=source, **arguments)


def _removed(
    declared: set[str], *, dry_run: bool, actor: User, actor_name: str
) -> list[SyncChange]:
    """Periodic tasks declared before and no longer: disabled (never deleted), then forgotten
    as declarations, so staff may enable and keep them."""
    changes = []
    gone = DeclaredState.objects.exclude(periodic_task__name__in=declared).select_related(
        "periodic_task"
    )
    for state in gone:
        row = state.periodic_task
        message = "no longer declared: disabled" if row.enabled else "no longer declared"
        change = SyncChange(row.name, state.origin, DISABLE, message=message)
        if row.enabled:
            change.fields = {"enabled": (True, False)}
        if not dry_run:
            with transaction.atomic():
                if row.enabled:
                    schedule_disable(
                        name=row.name, actor=actor, actor_name=actor_name, source=Source.CODE
                    )
                state.delete()
            change.applied = True
        changes.append(change)
    return changes


def _remember(declared: list[DeclaredSchedule], changes: list[SyncChange]) -> None:
    """Keep each declaration as applied, so the next sync tells code changes from drift."""
    failed = {change.name for change in changes if change.action == ERROR}
    rows = dict(
        PeriodicTask.objects.filter(name__in=[d.name for d in declared]).values_list("name", "pk")
    )
    for item in declared:
        if item.name in failed or item.name not in rows:
            continue
        DeclaredState.objects.update_or_create(
            periodic_task_id=rows[item.name],
            defaults={"origin": item.origin, "fields": item.fields()},
        )


def schedules_reset_to_code(
    *, names: Iterable[str], actor: User = None, source: str = Source.ADMIN
) -> SyncReport:
    """Put the named periodic tasks back as code declares them ("reset to code": what staff
    changed is overwritten, audited as theirs). Names not declared in code are left alone."""
    wanted = set(names)
    declared = [item for item in declared_schedules() if item.name in wanted]
    return schedules_sync(declared, force=True, prune=False, actor=actor, source=source)
