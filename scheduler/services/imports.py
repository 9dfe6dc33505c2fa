"""`manage.py scheduler import FILE`: apply schedules written as a file (the shape `scheduler
export` writes) through the schedule services, all or nothing.

Each entry creates its periodic task or updates the fields that differ; every entry is tried,
so one run reports every error (with where it is in the file), and any error applies nothing.
`prune` deletes the periodic tasks the file does not name (audited like every delete). The
file's alert channels and rules are applied in the same transaction (alert_imports.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db import transaction
from django_celery_beat.models import PeriodicTask

from scheduler.core.masking import holds_mask
from scheduler.models import Source
from scheduler.schedules.declared import DECLARED_FIELDS, DeclaredSchedule, row_fields
from scheduler.services.alert_imports import AlertChange, alerts_import
from scheduler.services.declared import declared_create, declared_policies, declared_update
from scheduler.services.errors import ScheduleError, User
from scheduler.services.schedules import schedule_delete

_REQUIRED = ("name", "task", "schedule")
_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "task": (str,),
    "schedule": (str,),
    "timezone": (str,),
    "params": (dict,),
    "queue": (str, type(None)),
    "description": (str,),
    "overlap": (str,),
    "catchup": (str,),
    "catchup_window": (int, str, type(None)),
    "misfire": (str,),
    "jitter": (int, str),
    # A YAML time without quotes is read as a date or datetime (a datetime is a date).
    "start_time": (str, date, type(None)),
    "end_time": (str, date, type(None)),
    "max_runs": (int, type(None)),
    "pause_after_failures": (int, type(None)),
    "enabled": (bool,),
}


@dataclass(frozen=True)
class ImportEntry:
    """One schedule of the file, and where it is (`line 12`, `schedules[3]`) for messages."""

    values: Mapping[str, Any]
    where: str


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    applied: bool = False
    # The alert channels and rules of the file, in the order applied.
    alerts: list[AlertChange] = field(default_factory=list)


class _RollBack(Exception):
    pass


def schedules_import(
    entries: Iterable[ImportEntry] | None,
    *,
    prune: bool = False,
    dry_run: bool = False,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.CLI,
    channels: Sequence[ImportEntry] | None = None,
    rules: Sequence[ImportEntry] | None = None,
) -> ImportReport:
    """Apply every entry, or none of them when one is wrong (or on a dry run). None: the file
    has no such section, and `prune` leaves those alone."""
    report = ImportReport()
    seen: dict[str, str] = {}
    try:
        with transaction.atomic():
            for entry in entries or ():
                item = _checked(entry, seen, report)
                if item is not None:
                    _apply(
                        item, entry.where, report, actor=actor, actor_name=actor_name, source=source
                    )
            if prune and entries is not None:
                for periodic_task in PeriodicTask.objects.exclude(name__in=seen).order_by("name"):
                    schedule_delete(
                        name=periodic_task.name,
                        actor=actor,
                        actor_name=actor_name,
                        source=source,
                    )
                    report.deleted.append(periodic_task.name)
            # After the schedules: a rule may watch one the file creates.
            report.alerts, errors = alerts_import(
                channels, rules, prune=prune, actor=actor, actor_name=actor_name, source=source
            )
            report.errors.extend(errors)
            if report.errors or dry_run:
                raise _RollBack
    except _RollBack:
        return report
    report.applied = True
    return report


def _checked(entry: ImportEntry, seen: dict[str, str], report: ImportReport) -> Any:
    """The entry as a declaration, or None with its errors added to the report."""
    values, where = entry.values, entry.where
    if not isinstance(values, Mapping):
        report.errors.append(f"{where}: a schedule is a mapping of its fields")
        return None
    errors = [f"{where}: {name}: missing" for name in _REQUIRED if name not in values]
    for key, value in values.items():
        if key not in _TYPES:
            errors.append(f"{where}: {key}: unknown field (fields: {', '.join(_TYPES)})")
        elif not isinstance(value, _TYPES[key]) or (key != "enabled" and isinstance(value, bool)):
            errors.append(
                f"{where}: {key}: {type(value).__name__} is not a {_TYPES[key][0].__name__}"
            )
    if holds_mask(values.get("params")):
        errors.append(f"{where}: params: holds a masked secret (***): put the value back")
    name = values.get("name")
    if isinstance(name, str) and name in seen:
        errors.append(f"{where}: name: {name!r} is in the file twice (first at {seen[name]})")
    if isinstance(name, str):
        seen.setdefault(name, where)
    if errors:
        report.errors.extend(errors)
        return None
    return DeclaredSchedule(**{key: values[key] for key in values})


def _apply(
    item: DeclaredSchedule,
    where: str,
    report: ImportReport,
    *,
    actor: User,
    actor_name: str,
    source: str,
) -> None:
    row = (
        PeriodicTask.objects.select_related("options", "interval", "crontab", "clocked", "solar")
        .filter(name=item.name)
        .first()
    )
    try:
        item = declared_policies(item)
        with transaction.atomic():
            if row is None:
                declared_create(item, actor=actor, actor_name=actor_name, source=source)
                report.created.append(item.name)
                return
            wanted, current = item.fields(), row_fields(row)
            changed = [name for name in DECLARED_FIELDS if wanted[name] != current[name]]
            if not changed:
                report.unchanged.append(item.name)
                return
            declared_update(item, changed, actor=actor, actor_name=actor_name, source=source)
            report.updated[item.name] = changed
    except ScheduleError as exc:
        report.errors.extend(
            f"{where}: {name}: {' '.join(messages)}" for name, messages in exc.errors.items()
        )
