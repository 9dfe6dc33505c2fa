"""Delivery of events to the channel layer over one connection per thread, in batches.

Callers hand events to the process's one publisher (no I/O on their thread); its daemon thread
sends them in batches and stores their rows in bulk; in a worker the run's own thread sends the
end of its run itself. Why: docs/architecture.md, "The live event bus".

Groups: `events.staff` (every event, for the dashboard), `events.<object>.<id>` (events of a
domain object, e.g. a tournament), and `task.<task id>` (the finish of one task, for REST
clients waiting on it).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers
from django.db import close_old_connections, connections
from redis.exceptions import RedisError

from scheduler.live.channel_batches import (
    SyncClients,
    batchable,
    group_send_many,
    group_send_many_sync,
)
from scheduler.live.event_inserts import insert_rows
from scheduler.observability.metrics import MetricsBuffer
from scheduler.protocol import FINISHED_STATES, EventPayload

logger = logging.getLogger(__name__)

STAFF_GROUP = "events.staff"
MESSAGE_TYPE = "scheduler.event"  # the consumer's handler: scheduler_event
# Most events sent (or rows stored) in one go.
BATCH_LIMIT = 500
# Seconds a queued or started event may wait for company (docs/architecture.md, live event bus).
LINGER = 0.02
LINGERING_TYPES = frozenset({"task.queued", "task.started"})
# Events are stored at most this long after they were handed over.
PERSIST_INTERVAL = 0.2
_GROUP_SAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def task_group(task_id: str) -> str:
    return f"task.{_GROUP_SAFE.sub('_', task_id)[:90]}"


def object_group(object_type: str, object_id: str | int) -> str:
    return f"events.{_GROUP_SAFE.sub('_', object_type)}.{_GROUP_SAFE.sub('_', str(object_id))}"[:99]


def groups_for(payload: EventPayload) -> list[str]:
    groups = [STAFF_GROUP]
    obj = payload.get("object")
    if obj:
        groups.append(object_group(obj["type"], obj["id"]))
    if payload.get("task_id") and payload.get("state") in FINISHED_STATES:
        groups.append(task_group(payload["task_id"]))
    return groups


@dataclass
class Outgoing:
    payload: EventPayload
    # Unsaved TaskEvent to persist in the batch (worker hot path); None when already saved.
    row: Any = None
    groups: list[str] = field(default_factory=list)


class _Sender:
    """One thread's way to the channel layer: our own layer instance and its connections.

    Over redis-py's blocking client when the layer is channels-redis'
    (scheduler/live/channel_batches.py); any other layer through its own `group_send`, on an event
    loop of this thread.
    """

    def __init__(self) -> None:
        self.layer = (
            channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
            if DEFAULT_CHANNEL_LAYER in channel_layers.configs
            else None
        )
        self._clients = SyncClients(self.layer) if batchable(self.layer) else None
        self._loop: asyncio.AbstractEventLoop | None = None

    def send(self, batch: Iterable[Outgoing]) -> None:
        messages = [
            (group, {"type": MESSAGE_TYPE, "event": item.payload})
            for item in batch
            for group in item.groups
        ]
        if self._clients is not None:
            group_send_many_sync(self.layer, messages, self._clients)
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(group_send_many(self.layer, messages))

    def close(self) -> None:
        if self._clients is not None:
            self._clients.close()
        if self._loop is not None:
            self._loop.close()


class Publisher:
    """One per process (`publisher()`); restarted in a forked child, which has no threads."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        # Only wakes the thread up (True) or stops it (None): events wait in self._waiting.
        self._queue: queue.SimpleQueue[bool | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards what is held and _sleeping
        self._send_lock = threading.Lock()  # one batch on the wire at a time: order is kept
        self._idle = threading.Event()
        self._idle.set()
        self._flush_now = threading.Event()
        self._inline = False
        self._local = threading.local()
        self.sent = 0
        self.failed = 0
        # Events waiting (up to LINGER) to be sent with others.
        self._waiting: list[Outgoing] = []
        self._waiting_since = 0.0
        self._due_now = False
        # Rows wait up to PERSIST_INTERVAL for others to share their write.
        self._rows: list[Any] = []
        self._rows_since = 0.0
        # Work for this thread at a given time (monotonic), see call_later.
        self._calls: list[tuple[float, Callable[[], object]]] = []
        # When the thread will look again (monotonic; inf: when woken): a caller wakes it only
        # for something due earlier than that.
        self._wake_at = 0.0
        # Counts for /metrics, written to Redis by the thread about once a second.
        self.metrics = MetricsBuffer()

    def call_later(self, delay: float, callback: Callable[[], object]) -> None:
        """Run `callback` on the publisher thread in `delay` seconds, or sooner on flush/stop.

        For writes that may wait, and may turn out unnecessary by then (the result backend's
        STARTED rows). A callback returns whether it used the database (then the thread looks
        after its connection, as after a request). It must not raise; if it does, it is logged.
        """
        self._ensure_thread()
        due = time.monotonic() + delay
        with self._lock:
            self._idle.clear()
            self._calls.append((due, callback))
            wake = self._wake_earlier([due])
        if wake:
            self._queue.put(True)

    def deliver_inline(self, enabled: bool = True) -> None:
        """Let the thread that records a run's end send it (worker processes: module doc)."""
        self._inline = enabled

    def publish(self, payload: EventPayload, *, row: Any = None) -> None:
        """Hand one event over for delivery; returns at once (or, inline, after one send)."""
        self._ensure_thread()
        item = Outgoing(payload=payload, row=row, groups=groups_for(payload))
        urgent = payload.get("type") not in LINGERING_TYPES
        # Not from a coroutine: this thread's loop cannot run inside a running one.
        inline = urgent and self._inline and asyncio._get_running_loop() is None
        now = time.monotonic()
        due = []
        with self._lock:
            self._idle.clear()
            if not self._waiting:
                self._waiting_since = now
                due.append(now + LINGER)
            self._waiting.append(item)
            if urgent:
                self._due_now = True
                if not inline:
                    due.append(now)
            if row is not None:
                if not self._rows:
                    self._rows_since = now
                    due.append(now + PERSIST_INTERVAL)
                self._rows.append(row)
            wake = self._wake_earlier(due)
        if wake:
            self._queue.put(True)
        if inline:
            self._send_waiting(self._sender())
            counts_due = self.metrics.wait()
            if counts_due is not None:
                with self._lock:
                    wake = self._wake_earlier([time.monotonic() + counts_due])
                if wake:
                    self._queue.put(True)

    def _wake_earlier(self, deadlines: list[float]) -> bool:
        """Whether the thread must be woken for these; the caller holds self._lock."""
        if not deadlines or min(deadlines) >= self._wake_at:
            return False
        self._wake_at = min(deadlines)
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything handed over so far is sent and stored; False on timeout."""
        if self._thread is None:
            return True
        self._flush_now.set()
        self._queue.put(True)
        delivered = self._idle.wait(timeout)
        self.metrics.flush()
        return delivered

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        # This thread's own loop, if it sent inline: closed now, not by the garbage collector
        # wherever it runs (channels-redis flushes its pools on close, on that loop).
        sender: _Sender | None = getattr(self._local, "sender", None)
        if sender is not None and asyncio._get_running_loop() is None:
            self._local.sender = None
            sender.close()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="scheduler-event-publisher", daemon=True
                )
                self._thread.start()

    def _sender(self) -> _Sender:
        sender: _Sender | None = getattr(self._local, "sender", None)
        if sender is None:
            sender = self._local.sender = _Sender()
        return sender

    def _run(self) -> None:
        sender = self._sender()
        try:
            stopping = False
            while not stopping:
                with contextlib.suppress(queue.Empty):
                    stopping = self._queue.get(timeout=self._next_deadline()) is None
                # Wakes that arrived meanwhile change nothing: everything is looked at below.
                while not stopping:
                    try:
                        stopping = self._queue.get_nowait() is None
                    except queue.Empty:
                        break
                forced = stopping or self._flush_now.is_set()
                self._flush_now.clear()
                self._send_waiting(sender, force=forced)
                wrote = self._run_calls(force=forced)
                wrote = self._write_rows(force=forced) or wrote
                if wrote:
                    # As after a request: the connection closes when CONN_MAX_AGE says so.
                    close_old_connections()
                if forced or self.metrics.due():
                    self.metrics.flush()
                with self._lock:
                    if not self._waiting and not self._rows and not self._calls:
                        self._idle.set()
        finally:
            self._send_waiting(sender, force=True)
            self._run_calls(force=True)
            self._write_rows(force=True)
            self.metrics.flush()
            connections.close_all()  # this thread's, which ends here
            self._idle.set()
            sender.close()

    def _next_deadline(self) -> float | None:
        """Seconds until something held is due; None when nothing is held."""
        now = time.monotonic()
        with self._lock:
            waits = []
            if self._waiting:
                waits.append(0.0 if self._due_now else self._waiting_since + LINGER - now)
            if self._rows:
                waits.append(self._rows_since + PERSIST_INTERVAL - now)
            if self._calls:
                waits.append(min(due for due, _ in self._calls) - now)
            counts = self.metrics.wait()
            if counts is not None:
                waits.append(counts)
            # While anything is held, look at least every LINGER: an event that may linger then
            # never needs to wake the thread (a wake per run cost more than the sending).
            timeout = max(0.0, min([*waits, LINGER])) if waits else None
            self._wake_at = math.inf if timeout is None else now + timeout
        return timeout

    def _send_waiting(self, sender: _Sender, *, force: bool = True) -> None:
        with self._send_lock:
            with self._lock:
                due = self._due_now or time.monotonic() - self._waiting_since >= LINGER
                if not self._waiting or not (force or due):
                    return
                batch, self._waiting, self._due_now = self._waiting, [], False
            for start in range(0, len(batch), BATCH_LIMIT):
                self._deliver(sender, batch[start : start + BATCH_LIMIT])

    def _deliver(self, sender: _Sender, batch: list[Outgoing]) -> None:
        # Live first: the dashboard and waiting clients should not wait for the database.
        delivered = False
        if sender.layer is not None:
            try:
                sender.send(batch)
                self.sent += len(batch)
                delivered = True
            except (OSError, ConnectionError, RedisError) as exc:
                # Redis down or restarting: live views miss these; the log keeps them.
                self.failed += len(batch)
                logger.warning("could not publish %d event(s): %s", len(batch), exc)
            except Exception:
                self.failed += len(batch)
                logger.warning("could not publish %d event(s)", len(batch), exc_info=True)
        self.metrics.add((item.payload for item in batch), delivered=delivered)

    def _run_calls(self, *, force: bool = False) -> bool:
        """Run the calls that are due; whether any of them used the database."""
        now = time.monotonic()
        with self._lock:
            due = [call for call in self._calls if force or call[0] <= now]
            if not due:
                return False
            self._calls = [call for call in self._calls if not (force or call[0] <= now)]
        wrote = False
        for _, callback in due:
            try:
                # Most find nothing to do (a STARTED row whose run has ended): looking after
                # the connection for those cost more than the calls.
                wrote = bool(callback()) or wrote
            except Exception:
                wrote = True  # maybe half-way through a write: the connection is checked
                logger.warning("a deferred call failed", exc_info=True)
        return wrote

    def _write_rows(self, *, force: bool = False) -> bool:
        """Store the held rows if they are due; whether any were."""
        # The log is read by people and by backfills, not by anything waiting on a run, so its
        # rows can wait a moment: one write per PERSIST_INTERVAL instead of one per event
        # (with SQLite, every write also queues behind the others for the one write lock).
        with self._lock:
            if not self._rows:
                return False
            due = time.monotonic() - self._rows_since >= PERSIST_INTERVAL
            if not (force or due or len(self._rows) >= BATCH_LIMIT):
                return False
            rows, self._rows = self._rows, []
        _persist(rows)
        return True


def _persist(rows: list[Any]) -> None:
    close_old_connections()
    try:
        insert_rows(rows)
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
