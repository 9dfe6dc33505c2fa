"""The event service: every task lifecycle event and every schedule change goes through here.

Celery signal receivers and the schedule services each make one call of `event_record`; it
persists the event (the log `manage.py scheduler logs` reads, kept bounded by
`scheduler.cleanup_results`) and publishes it to the channel layer (`scheduler/live/publisher.py`)
for the dashboard, websocket clients and REST clients waiting on a task.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, cast

from django.db import transaction
from django.utils import timezone

from scheduler.core.masking import masked
from scheduler.live.publisher import publisher
from scheduler.live.subscriptions import dispatch, subscriptions
from scheduler.models import TaskEvent
from scheduler.protocol import (  # noqa: F401 (re-exported for the rooms above)
    EVENT_STATES,
    MISSED,
    PUBLISHED,
    RUN_EVENTS,
    SCHEDULE_EVENTS,
    EventPayload,
)

logger = logging.getLogger(__name__)

# Event types and the states events carry: scheduler/protocol.py.
TASK_EVENTS = RUN_EVENTS
# The log level a line of `scheduler logs` gets, by event type.
# Custom events (`scheduler.live.publish`) are INFO.
LEVELS = {
    "task.failed": "ERROR",
    "task.retried": "WARNING",
    "task.revoked": "WARNING",
    "task.cancelled": "WARNING",
    "task.terminated": "WARNING",
    "task.missed": "WARNING",
    "task.dead_letter": "ERROR",
    "incident.opened": "ERROR",
}


def event_level(event_type: str) -> str:
    return LEVELS.get(event_type, "INFO")


# In worker and beat processes events are written in batches by the publisher thread (they are
# on the hot path of every task); elsewhere they are saved in the caller's transaction.
_deferred_writes = False


def defer_event_writes(enabled: bool = True) -> None:
    global _deferred_writes
    _deferred_writes = enabled


def event_payload(event: TaskEvent) -> EventPayload:
    """The JSON sent to the dashboard, websocket clients and waiting API clients.

    Shown to people: the values of secret keys in its data are masked (scheduler/core/masking.py).
    """
    return {
        "id": event.pk,
        "type": event.type,
        "task_id": event.task_id,
        "task_name": event.task_name,
        "periodic_task_name": event.periodic_task_name,
        "state": event.state,
        "worker": event.worker,
        "duration": event.duration,
        "message": event.message,
        "at": event.created_at.isoformat(),
        "object": (
            {"type": event.object_type, "id": event.object_id} if event.object_type else None
        ),
        "data": masked(event.payload),
    }


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
    object_type: str = "",
    object_id: str | int = "",
    at: datetime | None = None,
) -> TaskEvent:
    """Record one event and publish it live; `type` is one of TASK_EVENTS or SCHEDULE_EVENTS.

    Published after the surrounding transaction commits, so nobody sees an event of a change
    that was rolled back.
    """
    event = _event(
        id=None,
        type=type,
        task_id=task_id or "",
        task_name=task_name or "",
        periodic_task_name=periodic_task_name or "",
        state=state,
        worker=worker or "",
        duration=duration,
        message=message[:10_000],
        payload=payload or {},
        object_type=object_type or "",
        object_id=str(object_id or ""),
        created_at=at or timezone.now(),
    )
    if _deferred_writes and not transaction.get_connection().in_atomic_block:
        live = event_payload(event)
        publisher().publish(live, row=event)
        if subscriptions():
            dispatch(live)
        return event
    event.save()
    transaction.on_commit(lambda: _published(event))
    return event


# TaskEvent's columns in the order its constructor takes them by position, as `Model.from_db`
# passes them: half the cost of keyword arguments, on the path of every run's events.
_COLUMNS: list[str] = []


def _event(**values: Any) -> TaskEvent:
    if not _COLUMNS:
        _COLUMNS.extend(field.attname for field in TaskEvent._meta.concrete_fields)
    model: Any = TaskEvent  # positional arguments, which the stubs do not follow
    return cast(TaskEvent, model(*[values[name] for name in _COLUMNS]))


def _published(event: TaskEvent) -> None:
    payload = event_payload(event)
    publisher().publish(payload)
    if subscriptions():
        dispatch(payload)


def event_record_safely(**fields: Any) -> TaskEvent | None:
    """`event_record` for signal receivers: a failure to log must never fail the task."""
    try:
        return event_record(**fields)
    except Exception:
        logger.warning("could not record event %s", fields.get("type"), exc_info=True)
        return None
