"""In-process event subscriptions (seed 002's event bus): `subscribe("task.*", handler)`.

Every event the event service records (ours, and custom ones from `publish`) is handed to the
handlers whose pattern matches its type, in the process that recorded it, once the surrounding
transaction has committed (at once when there is none). Patterns are shell globs over dotted
types, and the seed's names are aliases of ours (`task.completed` is `task.succeeded`):
scheduler/core/patterns.py. A handler that raises is logged and skipped: it never breaks the
caller nor the other handlers.

Handlers run on the recording thread (in a worker, the run's own thread, after its result is
stored), so they should be quick; hand slow work to a task.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.core.patterns import pattern_valid, type_matches
from scheduler.protocol import EVENT_ALIASES, EventPayload

logger = logging.getLogger(__name__)

Handler = Callable[[EventPayload], object]


@dataclass(frozen=True)
class Subscription:
    pattern: str
    handler: Handler

    def matches(self, event_type: str) -> bool:
        return type_matches(event_type, self.pattern, EVENT_ALIASES)


_lock = threading.Lock()
_subscriptions: tuple[Subscription, ...] = ()
# event type -> the subscriptions matching it, for the current `_subscriptions`: every run's
# events are dispatched in the worker, and matching globs and aliases each time cost more than
# the handlers that turn most of them down. Bounded: custom event types are anyone's.
_matching: dict[str, tuple[Subscription, ...]] = {}
_MATCHING_MAX = 1024


def subscribe(pattern: str, handler: Handler) -> Callable[[], None]:
    """Call `handler(event)` for every event whose type matches `pattern`; returns the function
    that cancels the subscription. `event` is the protocol's EventPayload (secrets masked)."""
    global _subscriptions
    if not callable(handler):
        raise TypeError(f"handler {handler!r} is not callable")
    subscription = Subscription(pattern_valid(pattern), handler)
    with _lock:
        _subscriptions = (*_subscriptions, subscription)
        _matching.clear()

    def unsubscribe() -> None:
        global _subscriptions
        with _lock:
            _subscriptions = tuple(s for s in _subscriptions if s is not subscription)
            _matching.clear()

    return unsubscribe


def subscriptions() -> tuple[Subscription, ...]:
    return _subscriptions


def dispatch(event: EventPayload) -> int:
    """Hand `event` to every matching handler; how many ran without raising."""
    ran = 0
    for subscription in _matching_subscriptions(event["type"]):
        try:
            subscription.handler(event)
        except Exception:
            logger.exception(
                "event handler %r for %r failed on %s",
                subscription.handler,
                subscription.pattern,
                event["type"],
            )
        else:
            ran += 1
    return ran


def _matching_subscriptions(event_type: str) -> tuple[Subscription, ...]:
    found = _matching.get(event_type)
    if found is None:
        with _lock:
            found = tuple(s for s in _subscriptions if s.matches(event_type))
            if len(_matching) >= _MATCHING_MAX:
                _matching.clear()
            _matching[event_type] = found
    return found
