"""`/ws/events/`: task and schedule events, live, for signed-in staff.

Query string (all optional): `task=<task name>`, `state=<STATE>[,<STATE>...]`,
`object=<type>:<id>` (only that domain object's events), `backfill=<N>` (recent events sent
first, default 50, at most 500). A client may change its filters later by sending
`{"action": "filter", "task": ..., "state": ..., "backfill": N}`.

Server messages: `{"kind": "backfill", "events": [...]}` (oldest first), then
`{"kind": "event", "event": {...}}` per event, `{"kind": "error", "error": "..."}` for a bad
client message. Close codes: 4401 not signed in, 4403 signed in without permission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from scheduler.permissions import can_view_dashboard
from scheduler.publisher import STAFF_GROUP, object_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
DEFAULT_BACKFILL = 50
MAX_BACKFILL = 500
BAD_MESSAGE = 'expected a JSON object: {"action": "filter", ...} or {"action": "ping"}'


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class EventFilter:
    task: str = ""
    states: frozenset[str] = frozenset()
    object_type: str = ""
    object_id: str = ""
    backfill: int = DEFAULT_BACKFILL

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> EventFilter:
        task = raw.get("task") or ""
        state = raw.get("state") or ""
        obj = raw.get("object") or ""
        backfill = raw.get("backfill", DEFAULT_BACKFILL)
        if not all(isinstance(value, str) for value in (task, state, obj)):
            raise FilterError("task, state and object must be strings")
        try:
            backfill = int(backfill)
        except (TypeError, ValueError):
            raise FilterError(f"backfill must be a whole number, not {backfill!r}") from None
        if not 0 <= backfill <= MAX_BACKFILL:
            raise FilterError(f"backfill must be between 0 and {MAX_BACKFILL}")
        object_type = object_id = ""
        if obj:
            object_type, sep, object_id = obj.partition(":")
            if not sep or not object_type or not object_id:
                raise FilterError(f"object must be written type:id, not {obj!r}")
        states = frozenset(s.strip().upper() for s in state.split(",") if s.strip())
        return cls(
            task=task[:255],
            states=states,
            object_type=object_type,
            object_id=object_id,
            backfill=backfill,
        )

    @property
    def group(self) -> str:
        if self.object_type:
            return object_group(self.object_type, self.object_id)
        return STAFF_GROUP

    def matches(self, event: dict[str, Any]) -> bool:
        if self.task and event.get("task_name") != self.task:
            return False
        if self.states and event.get("state") not in self.states:
            return False
        if self.object_type:
            obj = event.get("object") or {}
            return bool(obj.get("type") == self.object_type and obj.get("id") == self.object_id)
        return True


@database_sync_to_async
def recent_events(event_filter: EventFilter) -> list[dict[str, Any]]:
    from scheduler.selectors import events_recent

    return events_recent(
        limit=event_filter.backfill,
        task_name=event_filter.task,
        state_in=event_filter.states,
        object_type=event_filter.object_type,
        object_id=event_filter.object_id,
    )


class EventsConsumer(AsyncJsonWebsocketConsumer):
    event_filter: EventFilter
    group: str = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Accept first: a close before accept is an HTTP 403 and loses the application code.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(can_view_dashboard)(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        query = {
            key: values[-1] for key, values in parse_qs(self.scope["query_string"].decode()).items()
        }
        try:
            self.event_filter = EventFilter.parse(query)
        except FilterError as exc:
            await self.send_json({"kind": "error", "error": str(exc)})
            await self.close(code=4400)
            return
        await self._join(self.event_filter)

    async def _join(self, event_filter: EventFilter) -> None:
        if self.group != event_filter.group:
            if self.group:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = event_filter.group
            await self.channel_layer.group_add(self.group, self.channel_name)
        self.event_filter = event_filter
        events = await recent_events(event_filter) if event_filter.backfill else []
        await self.send_json({"kind": "backfill", "events": events})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("action") not in {"filter", "ping"}:
            await self.send_json(
                {"kind": "error", "error": 'send {"action": "filter", ...} or {"action": "ping"}'}
            )
            return
        if content["action"] == "ping":
            await self.send_json({"kind": "pong"})
            return
        try:
            event_filter = EventFilter.parse(content)
        except FilterError as exc:
            await self.send_json({"kind": "error", "error": str(exc)})
            return
        await self._join(event_filter)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        import json

        try:
            return json.loads(text_data)
        except ValueError:
            return None  # answered as a bad message by receive_json

    async def scheduler_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        if self.event_filter.matches(event):
            await self.send_json({"kind": "event", "event": event})

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
