"""The event bus's own read: the latest events as live payloads, for a connection's backfill."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from scheduler.core.patterns import is_glob, types_matching
from scheduler.live.custom_events import RESERVED_PREFIXES
from scheduler.live.events import event_payload
from scheduler.models import TaskEvent
from scheduler.protocol import EVENT_ALIASES, EventPayload, EventType

# A glob over custom types ("report.*") learns which types exist from this many latest events.
TYPE_WINDOW = 5000


def types_wanted(patterns: Iterable[str], events: QuerySet[TaskEvent]) -> list[str]:
    """The stored types `patterns` name, to read along the index on type: ours and their
    aliases from EventType, custom ones as written, and those a glob matches among the types
    of the latest TYPE_WINDOW `events` (a bounded read: the log is never searched for them)."""
    patterns = tuple(patterns)
    wanted = types_matching(patterns, (str(kind) for kind in EventType), EVENT_ALIASES)
    wanted |= {pattern for pattern in patterns if not is_glob(pattern)}
    # Custom types never start with ours: a glob under them matches only types of EventType.
    open_globs = [p for p in patterns if is_glob(p) and not p.startswith(RESERVED_PREFIXES)]
    if open_globs:
        latest = events.order_by("-created_at", "-id").values("id")[:TYPE_WINDOW]
        seen = TaskEvent.objects.filter(id__in=latest).values_list("type", flat=True).distinct()
        wanted |= types_matching(open_globs, seen)
    return sorted(wanted)


def events_recent(
    *,
    limit: int = 50,
    task_name: str = "",
    state_in: Iterable[str] = (),
    type_patterns: Iterable[str] = (),
    object_type: str = "",
    object_id: str = "",
) -> list[EventPayload]:
    """The latest `limit` events as live payloads, oldest first (the dashboard's backfill).

    `type_patterns`: checked patterns (scheduler/core/patterns.py), as the websocket's filter
    matches live events."""
    events = TaskEvent.objects.all()
    if task_name:
        events = events.filter(task_name=task_name)
    wanted = list(state_in)
    if wanted:
        events = events.filter(state__in=wanted)
    if object_type:
        events = events.filter(object_type=object_type, object_id=object_id)
    patterns = tuple(type_patterns)
    if patterns:
        events = events.filter(type__in=types_wanted(patterns, events))
    latest = list(events.order_by("-created_at", "-id")[:limit])
    return [event_payload(event) for event in reversed(latest)]
