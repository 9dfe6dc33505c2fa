"""Custom events: an app's own events, stored, shown live and handed to subscribers like ours.

    from scheduler.live import publish, subscribe

    def on_report(event):
        print(event["type"], event["data"]["data"]["rows"])

    unsubscribe = subscribe("report.*", on_report)
    publish("report.published", {"rows": 120}, source="reports", priority="high")

`publish` records the event through the event service (`scheduler/live/events.py`): one row in
the event log (`manage.py scheduler logs --filter 'report.*'`), one message to the dashboard and
to websocket clients (`/ws/events/?type=report.*`), and, after the surrounding transaction
commits, a call of every handler subscribed to a matching pattern
(`scheduler/live/subscriptions.py`). Its live payload's `data` is
`{"data": ..., "source": ..., "priority": ...}`.

Types are dotted lower-case words ("report.published"); `task.`, `schedule.` and `incident.` are
ours, so an app cannot publish an event that reads as a run, a schedule change or an alert.
"""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Any

from scheduler.core.patterns import PatternError, event_type_valid
from scheduler.live.events import event_record
from scheduler.models import TaskEvent
from scheduler.protocol import OBJECT_ID_MAX, OBJECT_TYPE_MAX

# The seed's EventPriority, lower-cased.
PRIORITIES = ("low", "normal", "high", "critical")
# Ours (EventType): a custom event never reads as a run, a schedule change, an alert or a
# control of a queue or a worker. (A backfill's progress, `backfill.*`, is sent through this
# module's own `publish`.)
RESERVED_PREFIXES = ("task.", "schedule.", "incident.", "dead_letter.", "queue.", "worker.")
# Data travels in one channel message with the rest of the event, and stays in the event log.
DATA_MAX_BYTES = 64 * 1024
SOURCE_MAX = 100
_MESSAGE_MAX = 200
# As the websocket's `object=` filter reads a type (scheduler/live/consumers.py).
_OBJECT_TYPE = re.compile(rf"[a-z][a-z0-9_]{{0,{OBJECT_TYPE_MAX - 1}}}")


class PublishError(ValueError):
    """A custom event that cannot be published; the message names what is wrong."""


def publish(
    event_type: str,
    data: Any = None,
    *,
    source: str = "",
    priority: str | Enum = "normal",
    object: tuple[str, str | int] | None = None,
) -> TaskEvent:
    """Record the custom event `event_type` with its JSON `data`; PublishError when any
    argument is wrong (nothing is recorded then).

    `source` names who published it ("reports"), `priority` is low, normal, high or critical,
    and `object` ("tournament", 7) sends it to that domain object's page too.
    """
    kind = _type(event_type)
    text = _data(data)
    source = _source(source)
    priority = _priority(priority)
    object_type, object_id = _object(object)
    return event_record(
        type=kind,
        message=_message(kind, data, text, source),
        payload={"data": data, "source": source, "priority": priority},
        object_type=object_type,
        object_id=object_id,
    )


def _type(event_type: object) -> str:
    if not isinstance(event_type, str):
        raise PublishError(f"event type must be a string, not {event_type!r}")
    try:
        kind = event_type_valid(event_type)
    except PatternError as exc:
        raise PublishError(str(exc)) from None
    if kind.startswith(RESERVED_PREFIXES):
        raise PublishError(
            f"event type {event_type!r} is the scheduler's own ({', '.join(RESERVED_PREFIXES)}"
            "...): name custom events after your app, like 'report.published'"
        )
    return kind


def _data(data: Any) -> str:
    try:
        # As the event log's JSON column writes it; NaN is no JSON (PostgreSQL refuses it).
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PublishError(f"event data must be JSON-serialisable: {exc}") from None
    size = len(text.encode())
    if size > DATA_MAX_BYTES:
        raise PublishError(f"event data is {size} bytes of JSON, over {DATA_MAX_BYTES}")
    return text


def _source(source: object) -> str:
    if not isinstance(source, str):
        raise PublishError(f"source must be a string, not {source!r}")
    text = source.strip()
    if len(text) > SOURCE_MAX:
        raise PublishError(f"source must be at most {SOURCE_MAX} characters")
    return text


def _priority(priority: object) -> str:
    # The seed's EventPriority.HIGH reads as "high" too.
    name = getattr(priority, "name", priority)
    text = name.strip().lower() if isinstance(name, str) else ""
    if text not in PRIORITIES:
        raise PublishError(f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}")
    return text


def _object(value: object) -> tuple[str, str]:
    if value is None:
        return "", ""
    if not (isinstance(value, tuple) and len(value) == 2):
        raise PublishError(
            f"object must be a (type, id) pair like ('tournament', 7), not {value!r}"
        )
    object_type, object_id = value[0], str(value[1])
    if not isinstance(object_type, str) or not _OBJECT_TYPE.fullmatch(object_type):
        raise PublishError(
            f"object type must be a lower-case name like 'tournament' of at most "
            f"{OBJECT_TYPE_MAX} characters, not {object_type!r}"
        )
    if not object_id or len(object_id) > OBJECT_ID_MAX:
        raise PublishError(f"object id must be 1 to {OBJECT_ID_MAX} characters, not {object_id!r}")
    return object_type, object_id


def _message(kind: str, data: Any, text: str, source: str) -> str:
    """The log line's text: the data's own "message" when it has one, else the data itself."""
    said = data.get("message") if isinstance(data, dict) else data
    body = said if isinstance(said, str) else ("" if data is None else text)
    body = body if len(body) <= _MESSAGE_MAX else f"{body[: _MESSAGE_MAX - 1]}…"
    return f"{source}: {body}" if source and body else source or body or kind
