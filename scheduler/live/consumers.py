"""`/ws/events/`: task and schedule events, live, for signed-in staff.

Query string (all optional): `task=<task name>`, `state=<STATE>[,<STATE>...]` (any case; the
states of `scheduler.live.events.EVENT_STATES`), `type=<pattern>[,<pattern>...]` (event types as
globs, with the seed's aliases: `task.failed,incident.*`, `task.completed`, `report.*`; see
scheduler/core/patterns.py), `object=<type>:<id>` (only that domain object's events),
`backfill=<N>` (recent events sent first, default 50, at most 500). A client may change its
filters later by sending `{"action": "filter", "task": ..., "state": ..., "type": ...,
"object": ..., "backfill": N}`. Every field is validated alike in both: a bad one is answered with
`{"kind": "error", "field": "<name>", "error": "..."}`; in the URL the connection then closes
with 4400, in a message it stays open on the filter it had.

Who is calling: the session's user, or an API token's (scheduler/live/ws_auth.py), with the same
checks. Server messages: `{"kind": "backfill", "events": [...]}` (oldest first), then
`{"kind": "event", "event": {...}}` per event, `{"kind": "error", "error": "..."}` for a bad
client message. Close codes: 4400 bad filter in the URL, 4401 not signed in (or a bad token),
4403 signed in without permission, 4404 no websocket at that path (scheduler/live/ws_auth.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from scheduler.core.patterns import PatternError, any_matches, patterns_from_text
from scheduler.live.backlog import events_recent
from scheduler.live.events import EVENT_STATES
from scheduler.live.publisher import STAFF_GROUP, object_group
from scheduler.live.ws_auth import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHENTICATED,
    TOKEN_SUBPROTOCOL,
)
from scheduler.permissions import can_view_dashboard
from scheduler.protocol import EVENT_ALIASES, BackfillMessage, EventMessage, EventPayload

__all__ = ["CLOSE_BAD_REQUEST", "CLOSE_FORBIDDEN", "CLOSE_UNAUTHENTICATED", "EventsConsumer"]

DEFAULT_BACKFILL = 50
MAX_BACKFILL = 500
BAD_MESSAGE = 'expected a JSON object: {"action": "filter", ...} or {"action": "ping"}'
# As long as the event log's columns (TaskEvent), of the characters Celery task names use.
MAX_TASK_NAME = 255
_TASK_NAME = re.compile(r"[A-Za-z_][\w.:-]*")
_OBJECT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_OBJECT_ID = re.compile(r"[\w.:-]{1,64}")


class FilterError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def as_message(self) -> dict[str, str]:
        return {"kind": "error", "field": self.field, "error": str(self)}


def _text(raw: dict[str, Any], field: str) -> str:
    value = raw.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FilterError(field, f"{field} must be a string, not {value!r}")
    return value.strip()


def _states(text: str) -> frozenset[str]:
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in wanted if part.upper() not in EVENT_STATES]
    if unknown:
        raise FilterError(
            "state",
            f"unknown state {', '.join(map(repr, unknown))} "
            f"(use one of: {', '.join(sorted(EVENT_STATES))})",
        )
    return frozenset(part.upper() for part in wanted)


def _task(text: str) -> str:
    if len(text) > MAX_TASK_NAME:
        raise FilterError("task", f"task must be a task name of at most {MAX_TASK_NAME} characters")
    if text and not _TASK_NAME.fullmatch(text):
        raise FilterError("task", f"task must be a task name like scheduler.ping, not {text!r}")
    return text


def _types(text: str) -> tuple[str, ...]:
    try:
        return patterns_from_text(text)
    except PatternError as exc:
        raise FilterError("type", str(exc)) from None


def _object(text: str) -> tuple[str, str]:
    if not text:
        return "", ""
    object_type, sep, object_id = text.partition(":")
    if not sep or not object_type or not object_id:
        raise FilterError("object", f"object must be written type:id, not {text!r}")
    if not _OBJECT_TYPE.fullmatch(object_type):
        raise FilterError(
            "object", f"object type must be a lower-case name like tournament, not {object_type!r}"
        )
    if not _OBJECT_ID.fullmatch(object_id):
        raise FilterError("object", f"object id must be an id like 7, not {object_id!r}")
    return object_type, object_id


def _backfill(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_BACKFILL
    if isinstance(value, bool):
        raise FilterError("backfill", f"backfill must be a whole number, not {value!r}")
    try:
        backfill = int(value)
    except (TypeError, ValueError):
        raise FilterError("backfill", f"backfill must be a whole number, not {value!r}") from None
    if not 0 <= backfill <= MAX_BACKFILL:
        raise FilterError("backfill", f"backfill must be between 0 and {MAX_BACKFILL}")
    return backfill


@dataclass(frozen=True)
class EventFilter:
    task: str = ""
    states: frozenset[str] = frozenset()
    types: tuple[str, ...] = ()  # patterns, checked
    object_type: str = ""
    object_id: str = ""
    backfill: int = DEFAULT_BACKFILL

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> EventFilter:
        """The filter of a query string or a filter message; FilterError names a bad field."""
        task = _task(_text(raw, "task"))
        states = _states(_text(raw, "state"))
        types = _types(_text(raw, "type"))
        object_type, object_id = _object(_text(raw, "object"))
        backfill = _backfill(raw.get("backfill"))
        return cls(
            task=task,
            states=states,
            types=types,
            object_type=object_type,
            object_id=object_id,
            backfill=backfill,
        )

    @property
    def group(self) -> str:
        if self.object_type:
            return object_group(self.object_type, self.object_id)
        return STAFF_GROUP

    def matches(self, event: EventPayload) -> bool:
        if self.task and event.get("task_name") != self.task:
            return False
        if self.states and event.get("state") not in self.states:
            return False
        if self.types and not any_matches(event["type"], self.types, EVENT_ALIASES):
            return False
        if self.object_type:
            obj = event.get("object")
            return bool(obj and obj["type"] == self.object_type and obj["id"] == self.object_id)
        return True


@database_sync_to_async
def recent_events(event_filter: EventFilter) -> list[EventPayload]:
    return events_recent(
        limit=event_filter.backfill,
        task_name=event_filter.task,
        state_in=event_filter.states,
        type_patterns=event_filter.types,
        object_type=event_filter.object_type,
        object_id=event_filter.object_id,
    )


class EventsConsumer(AsyncJsonWebsocketConsumer):
    event_filter: EventFilter
    group: str = ""

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Accept first: a close before accept is an HTTP 403 and loses the application code.
        # A client that sent its API token as subprotocols gets "token" back, never the key.
        offered = TOKEN_SUBPROTOCOL in (self.scope.get("subprotocols") or ())
        await self.accept(subprotocol=TOKEN_SUBPROTOCOL if offered else None)
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
            await self.send_json(exc.as_message())
            await self.close(code=CLOSE_BAD_REQUEST)
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
        await self.send_json(BackfillMessage(kind="backfill", events=events))

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
            await self.send_json(exc.as_message())  # the filter it had stays
            return
        await self._join(event_filter)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except ValueError:
            return None  # answered as a bad message by receive_json

    async def scheduler_event(self, message: dict[str, Any]) -> None:
        event: EventPayload = message["event"]
        if self.event_filter.matches(event):
            await self.send_json(EventMessage(kind="event", event=event))

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
