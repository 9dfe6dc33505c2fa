"""The audit trail of schedule changes: who changed what (a before/after diff), with the
event recorded for the live feed. Every schedule write in services/schedules.py records through
here."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django_celery_beat.models import (
    PeriodicTask,
)

from scheduler.live.events import event_record
from scheduler.models import AuditEntry, ScheduleOptions
from scheduler.schedules.policies import CatchUp, OverlapPolicy
from scheduler.schedules.rows import stock_schedule
from scheduler.services.errors import User


def schedule_snapshot(
    periodic_task: PeriodicTask, options: ScheduleOptions | None
) -> dict[str, Any]:
    return {
        "task": periodic_task.task,
        "schedule": options.phrase if options and options.phrase else stock_schedule(periodic_task),
        "timezone": options.timezone if options else "UTC",
        "params": stored_params(periodic_task),
        "queue": periodic_task.queue or "",
        "enabled": periodic_task.enabled,
        "description": periodic_task.description,
        "overlap": options.overlap if options else OverlapPolicy.DEFAULT.value,
        # Not misfire: the services keep it in step with catchup.
        "catchup": options.catchup if options else CatchUp.LATEST.value,
        "catchup_window": options.catchup_window if options else None,
        "jitter": options.jitter if options else 0,
        "start_time": _iso(periodic_task.start_time),
        "end_time": _iso(periodic_task.expires),
        "max_runs": options.max_runs if options else None,
        "remaining_runs": options.remaining_runs if options else None,
        "pause_after_failures": options.pause_after_failures if options else None,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def stored_params(periodic_task: PeriodicTask) -> Any:
    try:
        return json.loads(periodic_task.kwargs or "{}")
    except json.JSONDecodeError:
        # Stored by hand as non-JSON: shown and diffed as the text it is, so such a row can
        # still be updated (with new params) and deleted.
        return periodic_task.kwargs


def changes_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {
        key: [before.get(key), after.get(key)] for key in after if before.get(key) != after.get(key)
    }


def actor_of(user: User) -> Any:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def actor_label(actor: User, actor_name: str = "") -> str:
    """Who acted, as messages and events name them: the user, else the command line's OS user."""
    user = actor_of(actor)
    if user is not None:
        return str(user.get_username())
    return actor_name or "system"


def audit_write(
    periodic_task: PeriodicTask | None,
    *,
    name: str,
    action: str,
    actor: User,
    source: str,
    changes: dict[str, Any],
    actor_name: str = "",
) -> AuditEntry:
    """`actor_name`: who acted when no Django user did (a command line's OS user)."""
    return AuditEntry.objects.create(
        periodic_task=periodic_task,
        periodic_task_name=name,
        action=action,
        actor=actor_of(actor),
        actor_name=actor_name,
        source=source,
        changes=changes,
    )


def schedule_event(
    action: str, periodic_task: PeriodicTask, *, message: str = "", **payload: Any
) -> None:
    event_record(
        type=f"schedule.{action}",
        task_name=periodic_task.task,
        periodic_task_name=periodic_task.name,
        message=message,
        payload=payload,
    )


def change_record(
    periodic_task: PeriodicTask,
    action: AuditEntry.Action,
    changes: dict[str, Any],
    /,
    *,
    actor: User,
    source: str,
    actor_name: str = "",
    **event: Any,
) -> None:
    """The audit entry and the event of one write to `periodic_task` (`event`: its payload)."""
    audit_write(
        periodic_task,
        name=periodic_task.name,
        action=action,
        actor=actor,
        actor_name=actor_name,
        source=source,
        changes=changes,
    )
    schedule_event(str(action), periodic_task, **event, source=source)


def change_record_update(
    periodic_task: PeriodicTask,
    changes: dict[str, Any],
    *,
    old_name: str,
    actor: User,
    source: str,
    actor_name: str = "",
) -> None:
    """Record an update, unless it changed nothing."""
    if periodic_task.name != old_name:
        changes = {**changes, "name": [old_name, periodic_task.name]}
    if changes:
        change_record(
            periodic_task,
            AuditEntry.Action.UPDATED,
            changes,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes=sorted(changes),
        )
