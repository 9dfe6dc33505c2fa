"""The event bus's own read: the latest events as live payloads, for a connection's backfill."""

from __future__ import annotations

from collections.abc import Iterable

from scheduler.live.events import event_payload
from scheduler.models import TaskEvent
from scheduler.protocol import EventPayload


def events_recent(
    *,
    limit: int = 50,
    task_name: str = "",
    state_in: Iterable[str] = (),
    object_type: str = "",
    object_id: str = "",
) -> list[EventPayload]:
    """The latest `limit` events as live payloads, oldest first (the dashboard's backfill)."""
    events = TaskEvent.objects.all()
    if task_name:
        events = events.filter(task_name=task_name)
    wanted = list(state_in)
    if wanted:
        events = events.filter(state__in=wanted)
    if object_type:
        events = events.filter(object_type=object_type, object_id=object_id)
    latest = list(events.order_by("-created_at", "-id")[:limit])
    return [event_payload(event) for event in reversed(latest)]
