"""Delivery of events to the channel layer, off the caller's thread, over one connection.

`async_to_sync(channel_layer.group_send)` per event creates an event loop and, with
channels-redis, a Redis connection pool per call (channels-redis issue #125). Instead each
process has one daemon thread with one event loop and one channel layer: callers put events on
a queue (no I/O on their thread), and the thread drains the queue in batches, persists what
must be persisted with one `bulk_create`, and sends every event to its groups.

Groups: `events.staff` (every event, for the dashboard), `events.<object>.<id>` (events of a
domain object, e.g. a tournament), and `task.<task id>` (the finish of one task, for REST
clients waiting on it).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

STAFF_GROUP = "events.staff"
MESSAGE_TYPE = "scheduler.event"  # the consumer's handler: scheduler_event
FINISHED_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED", "SKIPPED", "IGNORED"})
# A batch is whatever is queued when the thread wakes, up to this many.
BATCH_LIMIT = 500
_GROUP_SAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def task_group(task_id: str) -> str:
    return f"task.{_GROUP_SAFE.sub('_', task_id)[:90]}"


def object_group(object_type: str, object_id: str | int) -> str:
    return f"events.{_GROUP_SAFE.sub('_', object_type)}.{_GROUP_SAFE.sub('_', str(object_id))}"[:99]


def groups_for(payload: dict[str, Any]) -> list[str]:
    groups = [STAFF_GROUP]
    obj = payload.get("object")
    if obj:
        groups.append(object_group(obj["type"], obj["id"]))
    if payload.get("task_id") and payload.get("state") in FINISHED_STATES:
        groups.append(task_group(payload["task_id"]))
    return groups


@dataclass
class Outgoing:
    payload: dict[str, Any]
    # Unsaved TaskEvent to persist in the batch (worker hot path); None when already saved.
    row: Any = None
    groups: list[str] = field(default_factory=list)


class Publisher:
    """One per process (`publisher()`); restarted in a forked child, which has no threads."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._queue: queue.SimpleQueue[Outgoing | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self.sent = 0
        self.failed = 0

    def publish(self, payload: dict[str, Any], *, row: Any = None) -> None:
        """Queue one event for delivery; returns at once."""
        self._ensure_thread()
        self._idle.clear()
        self._queue.put(Outgoing(payload=payload, row=row, groups=groups_for(payload)))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is delivered; False on timeout."""
        if self._thread is None:
            return True
        return self._idle.wait(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="scheduler-event-publisher", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        from channels import DEFAULT_CHANNEL_LAYER
        from channels.layers import channel_layers

        # Our own instance: channels-redis keeps a pool per event loop, and this loop lives on.
        layer = (
            channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
            if DEFAULT_CHANNEL_LAYER in channel_layers.configs
            else None
        )
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < BATCH_LIMIT:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._deliver(loop, layer, batch)
                        return
                    batch.append(item)
                self._deliver(loop, layer, batch)
                if self._queue.empty():
                    self._idle.set()
        finally:
            self._idle.set()
            loop.close()

    def _deliver(self, loop: asyncio.AbstractEventLoop, layer: Any, batch: list[Outgoing]) -> None:
        # Live first: the dashboard and waiting clients should not wait for the database.
        if layer is not None:
            try:
                loop.run_until_complete(_send_all(layer, batch))
                self.sent += len(batch)
            except (OSError, ConnectionError, RedisError) as exc:
                # Redis down or restarting: live views miss these; the log keeps them.
                self.failed += len(batch)
                logger.warning("could not publish %d event(s): %s", len(batch), exc)
            except Exception:
                self.failed += len(batch)
                logger.warning("could not publish %d event(s)", len(batch), exc_info=True)
        rows = [item.row for item in batch if item.row is not None]
        if rows:
            _persist(rows)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)


async def _send_all(layer: Any, batch: Iterable[Outgoing]) -> None:
    sends = [
        layer.group_send(group, {"type": MESSAGE_TYPE, "event": item.payload})
        for item in batch
        for group in item.groups
    ]
    await asyncio.gather(*sends)


def _persist(rows: list[Any]) -> None:
    from django.db import close_old_connections

    from scheduler.models import TaskEvent

    close_old_connections()
    try:
        TaskEvent.objects.bulk_create(rows, batch_size=BATCH_LIMIT)
    except Exception:
        logger.warning("could not store %d event(s)", len(rows), exc_info=True)


_publisher: Publisher | None = None
_publisher_lock = threading.Lock()


def publisher() -> Publisher:
    global _publisher
    if _publisher is None or _publisher.pid != os.getpid():
        with _publisher_lock:
            if _publisher is None or _publisher.pid != os.getpid():
                _publisher = Publisher()
    return _publisher


@atexit.register
def _flush_at_exit() -> None:
    if _publisher is not None and _publisher.pid == os.getpid():
        _publisher.flush(timeout=2.0)
