"""The live event bus: a run's lifecycle recorded as an event row, published after commit by one
publisher thread per process in channel batches, and pushed by the websocket consumer to every
signed-in staff browser (and to the API's waiting requests).

Other apps subscribe to events and publish their own with `subscribe` and `publish`
(scheduler/live/custom_events.py has an example).

The names other rooms and apps use are re-exported here. Modules inside `scheduler/` import them
by their full path, so that no import depends on the order this file binds its names; other apps
import from here.
"""

from __future__ import annotations

from scheduler.live.consumers import EventFilter, EventsConsumer, FilterError
from scheduler.live.custom_events import PRIORITIES, PublishError, publish
from scheduler.live.events import (
    LEVELS,
    TASK_EVENTS,
    defer_event_writes,
    event_level,
    event_payload,
    event_record,
    event_record_safely,
)
from scheduler.live.publisher import FINISHED_STATES, publisher, task_group
from scheduler.live.routing import websocket_urlpatterns
from scheduler.live.subscriptions import subscribe
from scheduler.live.ws_auth import NotFoundURLRouter, OriginOrTokenValidator, TokenAuthMiddleware

__all__ = [
    "FINISHED_STATES",
    "LEVELS",
    "PRIORITIES",
    "TASK_EVENTS",
    "EventFilter",
    "EventsConsumer",
    "FilterError",
    "NotFoundURLRouter",
    "OriginOrTokenValidator",
    "PublishError",
    "TokenAuthMiddleware",
    "defer_event_writes",
    "event_level",
    "event_payload",
    "event_record",
    "event_record_safely",
    "publish",
    "publisher",
    "subscribe",
    "task_group",
    "websocket_urlpatterns",
]
