"""Reads of the event log: filters and tails, the dashboard's feed, activity and throughput."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, F, Max, Q, QuerySet, Window
from django.db.models.functions import FirstValue, RowNumber, TruncMinute
from django_celery_beat.models import PeriodicTask

from scheduler.core.patterns import (
    PatternError,
    is_glob,
    pattern_regex,
    patterns_from_text,
    types_matching,
)
from scheduler.live.events import LEVELS
from scheduler.models import TaskEvent
from scheduler.protocol import BUFFERED, EVENT_ALIASES, FINISHED_STATES, RUN_EVENTS, EventType
from scheduler.worker.task_base import SKIPPED

# --- Event log -----------------------------------------------------------------------------------


def event_types_at_least(level: str) -> list[str] | None:
    """Event types whose log level is `level` or more severe; None when that is every type."""
    levels = logging.getLevelNamesMapping()
    threshold = levels.get(level.strip().upper())
    if threshold is None:
        names = ("DEBUG", "INFO", "WARNING", "ERROR")
        raise ValueError(f"unknown level {level!r} (use one of: {', '.join(names)})")
    if threshold <= logging.INFO:
        return None
    return [event_type for event_type, name in LEVELS.items() if levels[name] >= threshold]


def event_types_named(text: str) -> Q | None:
    """Events whose type `text` names as patterns ("task.*", "task.failed,incident.*",
    "report.*", the alias "task.completed"); None when `text` is no list of patterns."""
    try:
        patterns = patterns_from_text(text)
    except PatternError:
        return None
    if not patterns:
        return None
    # Custom types are in no list: a glob is matched in the database.
    match = Q(type__in=sorted(types_matching(patterns, map(str, EventType), EVENT_ALIASES)))
    for pattern in patterns:
        match |= Q(type__regex=pattern_regex(pattern)) if is_glob(pattern) else Q(type=pattern)
    return match


def task_events(*, text: str | None = None, level: str | None = None) -> QuerySet[TaskEvent]:
    """Events matching `text` anywhere a log line shows it, or whose type it names as patterns
    (`event_types_named`), at `level` or above; unordered."""
    queryset = TaskEvent.objects.all()
    if level:
        types = event_types_at_least(level)
        if types is not None:
            queryset = queryset.filter(type__in=types)
    if text:
        match = Q()
        for field in ("type", "task_name", "periodic_task_name", "message", "task_id", "worker"):
            match |= Q(**{f"{field}__icontains": text})
        # A log line shows the level too: '--filter error' finds the failures.
        leveled = [t for t, name in LEVELS.items() if text.lower() in name.lower()]
        if leveled:
            match |= Q(type__in=leveled)
        if text.lower() in "info":
            match |= ~Q(type__in=list(LEVELS))
        named = event_types_named(text)
        if named is not None:
            match |= named
        queryset = queryset.filter(match)
    return queryset


def task_events_tail(
    *, lines: int, text: str | None = None, level: str | None = None, up_to_id: int | None = None
) -> list[TaskEvent]:
    """The last `lines` matching events, oldest first.

    Ordered by id, the order rows were written in, which is also what `--follow` polls by.
    """
    queryset = task_events(text=text, level=level)
    if up_to_id is not None:
        queryset = queryset.filter(id__lte=up_to_id)
    return list(reversed(queryset.order_by("-id")[:lines]))


def task_event_last_id() -> int:
    return TaskEvent.objects.aggregate(last=Max("id"))["last"] or 0


def event_wins(row: dict[str, Any], state: str, at: datetime) -> bool:
    # Events of one task come from several processes (the web process queues it, a worker runs
    # it) and a worker writes them in batches: order by time, except that nothing undoes an end.
    if row["at"] is None or at >= row["at"]:
        return True
    return state in FINISHED_STATES and row["state"] not in FINISHED_STATES


# The states the feed's filter offers (the websocket accepts a few more: see consumers.py).
FEED_STATES = (
    "PENDING",
    "RECEIVED",
    "STARTED",
    "RETRY",
    "SUCCESS",
    "FAILURE",
    "REVOKED",
    SKIPPED,
    BUFFERED,
)
# With a filter no index leads with (state, periodic task), the feed reads only this many of the
# latest events along the index it has: a bounded read, whatever the size of the log.
FEED_WINDOW = 5000


@dataclass(frozen=True)
class FeedFilter:
    """The dashboard feed's filter; the names are those of /ws/events/'s query string."""

    task: str = ""
    periodic_task: str = ""
    states: frozenset[str] = frozenset()
    object_type: str = ""
    object_id: str = ""

    @property
    def active(self) -> bool:
        return bool(self.task or self.periodic_task or self.states or self.object_type)


def _feed_events(where: FeedFilter, *, scan: int, window: int) -> list[TaskEvent]:
    events = TaskEvent.objects.filter(type__in=RUN_EVENTS).exclude(task_id="")
    # Equalities an index leads with, newest first along it: (object_type, object_id,
    # created_at) and (task_name, created_at).
    if where.object_type:
        events = events.filter(object_type=where.object_type, object_id=where.object_id)
    task_name = where.task
    if where.periodic_task and not task_name and not where.object_type:
        # A periodic task's runs are runs of its task: read along that task's index.
        task_name = (
            PeriodicTask.objects.filter(name=where.periodic_task)
            .values_list("task", flat=True)
            .first()
            or ""
        )
    if task_name:
        events = events.filter(task_name=task_name)
    rest = Q()
    if where.periodic_task:
        rest &= Q(periodic_task_name=where.periodic_task)
    if where.states:
        rest &= Q(state__in=sorted(where.states))
    if rest:
        # No index leads with these: filter the latest `window` rows of the read above instead
        # of searching the whole log for rare matches.
        latest = events.order_by("-created_at", "-id").values("id")[:window]
        events = TaskEvent.objects.filter(id__in=latest).filter(rest)
    return list(events.order_by("-created_at", "-id")[:scan])


def task_feed(
    *,
    limit: int = 50,
    scan: int = 500,
    where: FeedFilter | None = None,
    window: int = FEED_WINDOW,
) -> list[dict[str, Any]]:
    """The latest `limit` tasks of the event log, newest first, one row per task id.

    Each row folds the task's events: the state of its latest one, its names, worker, duration
    and error, when it was first seen (`queued_at`) and last heard of (`at`). Only the last `scan`
    task events are read: the feed shows what is happening now, and a bounded read keeps the page
    fast on a log of millions of rows. The dashboard's script folds live events the same way.

    `where` keeps the events of one task, periodic task, object or set of states, as the
    websocket's filter does for live events (a state filter keeps the events in those states).
    """
    events = _feed_events(where or FeedFilter(), scan=scan, window=window)
    rows: dict[str, dict[str, Any]] = {}
    for event in reversed(events):
        row = rows.get(event.task_id)
        if row is None:
            row = rows[event.task_id] = {
                "task_id": event.task_id,
                "queued_at": event.created_at,
                "at": None,
                "state": "",
                "task_name": "",
                "periodic_task_name": "",
                "worker": "",
                "duration": None,
                "message": "",
            }
        row["queued_at"] = min(row["queued_at"], event.created_at)
        for name in ("task_name", "periodic_task_name", "worker"):
            row[name] = getattr(event, name) or row[name]
        if event.duration is not None:
            row["duration"] = event.duration
        if event_wins(row, event.state, event.created_at):
            row["state"] = event.state
            row["at"] = event.created_at
            row["message"] = event.message
    newest = sorted(rows.values(), key=lambda row: row["queued_at"], reverse=True)
    return newest[:limit]


PENDING_EVENTS = ("task.queued", "task.retried", "task.started", "task.buffered")


def _pending_since(since: datetime) -> list[tuple[str, str, datetime]]:
    """(task id, event type, at) of the tasks seen since `since` whose latest event says queued,
    retried or started, newest first.

    Each task's events since then ranked newest first, in one pass over that window (indexed by
    time). A task's later events are in the window too, so its latest there is its latest. A
    "no later event" probe per event cost one index lookup each: 160 ms for an hour of a busy
    deployment (40,000 events).
    """
    by_task = [F("task_id")]
    newest_first = [F("created_at").desc(), F("id").desc()]
    latest = (
        TaskEvent.objects.filter(created_at__gte=since, type__in=RUN_EVENTS)
        .exclude(task_id="")
        .annotate(
            rank=Window(RowNumber(), partition_by=by_task, order_by=newest_first),
            # The latest type as a window too: a filter on `type` itself would be applied
            # before the ranking, and rank each task's pending events among themselves.
            latest_type=Window(FirstValue("type"), partition_by=by_task, order_by=newest_first),
        )
        .filter(rank=1, latest_type__in=PENDING_EVENTS)
        .values_list("task_id", "type", "created_at")
    )
    return sorted(latest, key=lambda row: row[2], reverse=True)


def task_activity_since(
    since: datetime, *, pending: list[tuple[str, str, datetime]] | None = None
) -> dict[str, int]:
    """Runs that succeeded and failed since `since`, and tasks seen since then that are running
    or waiting in a queue now (their latest event says started, or queued/retried); `pending`:
    `_pending_since(since)` when the caller has it already."""
    ended = TaskEvent.objects.filter(created_at__gte=since).aggregate(
        succeeded=Count("pk", filter=Q(type="task.succeeded")),
        failed=Count("pk", filter=Q(type="task.failed")),
    )
    pending = _pending_since(since) if pending is None else pending
    running = sum(1 for _, type, _ in pending if type == "task.started")
    return {
        "succeeded": ended["succeeded"],
        "failed": ended["failed"],
        "running": running,
        "queued": len(pending) - running,
    }


def tasks_in_flight_since(
    since: datetime, *, limit: int = 500, pending: list[tuple[str, str, datetime]] | None = None
) -> dict[str, str]:
    """task id -> "running" or "queued", for tasks counted by `task_activity_since`."""
    pending = _pending_since(since) if pending is None else pending
    return {
        task_id: "running" if type == "task.started" else "queued"
        for task_id, type, _ in pending[:limit]
    }


def task_throughput(*, now: datetime, minutes: int = 60) -> list[dict[str, Any]]:
    """Runs that ended per minute over the last `minutes` minutes (the current one included),
    oldest first: `{"minute", "succeeded", "failed"}`."""
    current = now.astimezone(UTC).replace(second=0, microsecond=0)
    first = current - timedelta(minutes=minutes - 1)
    # The window by time alone, the types counted per minute: with the types in the WHERE too,
    # PostgreSQL read them through the type index, every succeeded and failed event ever.
    rows = (
        TaskEvent.objects.filter(
            created_at__gte=first, created_at__lt=current + timedelta(minutes=1)
        )
        .annotate(minute=TruncMinute("created_at", tzinfo=UTC))
        .values("minute")
        .annotate(
            succeeded=Count("pk", filter=Q(type="task.succeeded")),
            failed=Count("pk", filter=Q(type="task.failed")),
        )
        .order_by()
    )
    counts: dict[tuple[datetime, str], int] = {}
    for row in rows:
        counts[(row["minute"], "task.succeeded")] = row["succeeded"]
        counts[(row["minute"], "task.failed")] = row["failed"]
    bins = []
    for k in range(minutes):
        minute = first + timedelta(minutes=k)
        bins.append(
            {
                "minute": minute,
                "succeeded": counts.get((minute, "task.succeeded"), 0),
                "failed": counts.get((minute, "task.failed"), 0),
            }
        )
    return bins
