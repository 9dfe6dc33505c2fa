"""The event service: every task lifecycle event and every schedule change goes through here.

Celery signal receivers and the schedule services each make one call of `event_record`; it
persists the event (the log `manage.py scheduler logs` reads, kept bounded by
`scheduler.cleanup_results`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.utils import timezone

from scheduler.models import TaskEvent

logger = logging.getLogger(__name__)

# Event types, as `TaskEvent.type` stores them and `scheduler logs --filter` matches them.
TASK_EVENTS = (
    "task.queued",
    "task.started",
    "task.succeeded",
    "task.failed",
    "task.retried",
    "task.revoked",
    "task.skipped",
)
SCHEDULE_EVENTS = (
    "schedule.created",
    "schedule.updated",
    "schedule.enabled",
    "schedule.disabled",
    "schedule.deleted",
    "schedule.run_now",
)
# The log level a line of `scheduler logs` gets, by event type.
LEVELS = {"task.failed": "ERROR", "task.retried": "WARNING", "task.revoked": "WARNING"}


def event_level(event_type: str) -> str:
    return LEVELS.get(event_type, "INFO")


def event_record(
    *,
    type: str,
    task_id: str = "",
    task_name: str = "",
    periodic_task_name: str = "",
    state: str = "",
    worker: str = "",
    duration: float | None = None,
    message: str = "",
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> TaskEvent:
    """Persist one event; `type` is one of TASK_EVENTS or SCHEDULE_EVENTS."""
    return TaskEvent.objects.create(
        type=type,
        task_id=task_id or "",
        task_name=task_name or "",
        periodic_task_name=periodic_task_name or "",
        state=state,
        worker=worker or "",
        duration=duration,
        message=message[:10_000],
        payload=payload or {},
        created_at=at or timezone.now(),
    )


def event_record_safely(**fields: Any) -> TaskEvent | None:
    """`event_record` for signal receivers: a failure to log must never fail the task."""
    try:
        return event_record(**fields)
    except Exception:
        logger.warning("could not record event %s", fields.get("type"), exc_info=True)
        return None
