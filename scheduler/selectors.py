"""Reads for the dashboard, the API and the CLI."""

from __future__ import annotations

import ast
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from celery import states
from django.conf import settings
from django.db import connections, router
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_results.models import TaskResult
from kombu.transport.redis import PRIORITY_STEPS

from config.queues import QUEUES
from scheduler.core import masking
from scheduler.core.plain_text import shortened, text_lines
from scheduler.core.redis_connection import get_redis
from scheduler.live.events import LEVELS, event_payload
from scheduler.models import AuditEntry, ScheduleState, TaskEvent
from scheduler.protocol import FINISHED_STATES, RESPONSE_NOTE, RUN_EVENTS
from scheduler.schedules.parsing import CrontabSpec, IntervalSpec, ParsedSchedule, Period
from scheduler.worker.task_base import SKIPPED

logger = logging.getLogger(__name__)


# --- Periodic tasks ------------------------------------------------------------------------------


def periodic_tasks_listed(*, enabled: bool | None = None) -> QuerySet[PeriodicTask]:
    """Periodic tasks by name with what listing them needs; all, or only enabled/disabled."""
    queryset = PeriodicTask.objects.select_related(
        "interval", "crontab", "clocked", "solar", "options"
    ).order_by("name")
    if enabled is not None:
        queryset = queryset.filter(enabled=enabled)
    return queryset


def periodic_task_counts() -> dict[str, int]:
    counts = PeriodicTask.objects.aggregate(
        on=Count("pk", filter=Q(enabled=True)), off=Count("pk", filter=Q(enabled=False))
    )
    return {"enabled": counts["on"], "disabled": counts["off"]}


def crontab_spec_of(row: CrontabSchedule) -> CrontabSpec:
    """The five cron fields of a django-celery-beat crontab row (its zone is not part of them)."""
    # str(): an unsaved row built in code may hold ints where the columns hold text.
    return CrontabSpec(
        minute=str(row.minute),
        hour=str(row.hour),
        day_of_week=str(row.day_of_week),
        day_of_month=str(row.day_of_month),
        month_of_year=str(row.month_of_year),
    )


def periodic_task_schedule(
    periodic_task: PeriodicTask, *, describe: bool = True
) -> ParsedSchedule | None:
    """The schedule beat runs, read from the schedule rows (not the phrase): None for solar.

    The rows, not `ScheduleOptions.phrase`, are the truth: a relative one-off ('in 5 minutes')
    read again later would move, and staff may have edited the stock fields in the admin.
    `describe=False` leaves its description empty: putting a schedule in words costs more than
    its next runs, which is all the lists of schedules ask of it per row.
    """
    from scheduler.services import schedule_describe

    description = schedule_describe(periodic_task) if describe else ""
    options = getattr(periodic_task, "options", None)  # None: a row made in the stock admin
    tz = options.timezone if options is not None else "UTC"
    if periodic_task.interval is not None:
        interval = periodic_task.interval
        if interval.period not in ("days", "hours", "minutes", "seconds"):
            return None  # microseconds: a hand-made row
        return ParsedSchedule(
            kind="interval",
            timezone=tz,
            description=description,
            interval=IntervalSpec(every=interval.every, period=cast("Period", interval.period)),
        )
    if periodic_task.crontab is not None:
        row = periodic_task.crontab
        return ParsedSchedule(
            kind="crontab",
            timezone=str(row.timezone),
            description=description,
            crontab=crontab_spec_of(row),
        )
    if periodic_task.clocked is not None:
        return ParsedSchedule(
            kind="clocked",
            timezone=tz,
            description=description,
            clocked=periodic_task.clocked.clocked_time,
        )
    return None


def periodic_task_next_runs(
    periodic_task: PeriodicTask,
    *,
    count: int,
    now: datetime | None = None,
    until: datetime | None = None,
) -> list[datetime]:
    """When beat will next run `periodic_task`, at most `count` runs and none after `until`
    (empty when disabled, spent or unknown), and none after its `expires`: beat stops there."""
    now = now or timezone.now()
    if periodic_task.expires is not None:
        last = periodic_task.expires - timedelta(microseconds=1)  # at `expires` it has stopped
        until = last if until is None else min(until, last)
    schedule = periodic_task_schedule(periodic_task, describe=False)
    if schedule is None or not periodic_task.enabled:
        return []
    if periodic_task.one_off and periodic_task.total_run_count:
        return []
    if schedule.interval is not None and periodic_task.last_run_at is not None:
        # Beat counts an interval from the last run; one already overdue is due right now.
        step = timedelta(seconds=schedule.interval.seconds)
        first = max(periodic_task.last_run_at + step, now)
        runs = [first + step * k for k in range(count)]
        return [run for run in runs if until is None or run <= until]
    return schedule.next_runs(count, now=now, until=until)


def audit_trail(name: str, *, limit: int = 20) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(periodic_task_name=name).select_related("actor")[:limit]


# --- Task results --------------------------------------------------------------------------------

# What people call a result's state -> Celery's state names (plus our SKIPPED).
RESULT_STATUS_ALIASES: dict[str, str] = {
    "failed": states.FAILURE,
    "failure": states.FAILURE,
    "error": states.FAILURE,
    "success": states.SUCCESS,
    "succeeded": states.SUCCESS,
    "completed": states.SUCCESS,
    "done": states.SUCCESS,
    "pending": states.PENDING,
    "queued": states.PENDING,
    "started": states.STARTED,
    "running": states.STARTED,
    "retry": states.RETRY,
    "retried": states.RETRY,
    "revoked": states.REVOKED,
    "cancelled": states.REVOKED,
    "canceled": states.REVOKED,
    "received": states.RECEIVED,
    "rejected": states.REJECTED,
    "ignored": states.IGNORED,
    "skipped": SKIPPED,
}


def result_status_named(text: str) -> str:
    """'failed' -> 'FAILURE': a result state from any usual spelling, in any case."""
    key = text.strip().lower()
    if key in RESULT_STATUS_ALIASES:
        return RESULT_STATUS_ALIASES[key]
    if key.upper() in states.ALL_STATES | {SKIPPED}:
        return key.upper()
    known = sorted(set(RESULT_STATUS_ALIASES.values()))
    raise ValueError(f"unknown status {text!r} (use one of: {', '.join(s.lower() for s in known)})")


def task_results(
    *,
    task_name: str | None = None,
    periodic_task_name: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
) -> QuerySet[TaskResult]:
    """Newest first; `status` is a Celery state name (see `result_status_named`)."""
    queryset = TaskResult.objects.all()
    if task_name:
        queryset = queryset.filter(task_name=task_name)
    if periodic_task_name:
        queryset = queryset.filter(periodic_task_name=periodic_task_name)
    if status:
        queryset = queryset.filter(status=status)
    if since is not None:
        queryset = queryset.filter(date_done__gte=since)
    return queryset.order_by("-date_done", "-id")[:limit]


# The list filters of the results admin offer the values of this many latest results (plus the
# catalog's task names): the distinct values of the whole history would be a scan per page.
RECENT_RESULTS_FOR_CHOICES = 2000


def _recent_values(field: str) -> set[str]:
    latest = TaskResult.objects.order_by("-date_done").values("pk")[:RECENT_RESULTS_FOR_CHOICES]
    return set(
        TaskResult.objects.filter(pk__in=latest)
        .order_by()
        .values_list(field, flat=True)
        .distinct()
        .exclude(**{f"{field}__isnull": True})
    )


def result_statuses() -> list[str]:
    """Every state a stored result can be in (Celery's and our SKIPPED)."""
    return sorted(states.ALL_STATES | {SKIPPED})


# At most this many periodic tasks are offered by the results list's filter: a deployment may
# have tens of thousands, too many for a sidebar (any other is still a `?periodic_task_name=`).
PERIODIC_TASK_CHOICES = 100


def periodic_task_names_run() -> list[str]:
    """Names of the periodic tasks that ran last (at most PERIODIC_TASK_CHOICES), from their
    state rows."""
    latest = ScheduleState.objects.order_by("-created_at").values_list(
        "periodic_task_name", flat=True
    )
    return sorted(latest[:PERIODIC_TASK_CHOICES])


def task_names_recent() -> list[str]:
    """The catalog's task names and those of the latest results."""
    from scheduler.catalog import load_catalog

    return sorted(set(load_catalog().names()) | _recent_values("task_name"))


def workers_recent() -> list[str]:
    """The workers that stored the latest results."""
    return sorted(_recent_values("worker"))


def task_known(task_id: str) -> bool:
    """Whether a run of `task_id` was queued or stored: an event or a result names it."""
    return (
        TaskResult.objects.filter(task_id=task_id).exists()
        or TaskEvent.objects.filter(task_id=task_id).exists()
    )


def task_result(task_id: str) -> TaskResult | None:
    return TaskResult.objects.filter(task_id=task_id).first()


def task_result_counts_since(since: datetime) -> dict[str, int]:
    rows = (
        TaskResult.objects.filter(date_done__gte=since)
        .values("status")
        .annotate(count=Count("pk"))
        .order_by("status")
    )
    return {row["status"]: row["count"] for row in rows}


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


def task_events(*, text: str | None = None, level: str | None = None) -> QuerySet[TaskEvent]:
    """Events matching `text` anywhere a log line shows it, at `level` or above; unordered."""
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


# --- Broker --------------------------------------------------------------------------------------

# kombu's separator between a queue's name and a priority step, in the names of its lists.
_KOMBU_PRIORITY_SEP = "\x06\x16"


def queue_depths() -> dict[str, int]:
    """Messages waiting in each of our queues on the broker.

    kombu's Redis transport keeps a queue as lists named `<global_keyprefix><queue>`, plus one
    list per priority step above 0 (`<queue>\\x06\\x16<step>`); the depth is the sum of them.
    Assumes the broker is the Redis of REDIS_URL (CELERY_BROKER_URL defaults to it).
    """
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    prefix = options.get("global_keyprefix", settings.REDIS_KEY_PREFIX)
    steps = options.get("priority_steps", PRIORITY_STEPS)
    names = list(QUEUES)
    pipe = get_redis().pipeline(transaction=False)
    for name in names:
        for step in steps:
            pipe.llen(f"{prefix}{name}{_KOMBU_PRIORITY_SEP}{step}" if step else f"{prefix}{name}")
    sizes = iter(pipe.execute())
    return {name: sum(int(next(sizes)) for _ in steps) for name in names}


def events_recent(
    *,
    limit: int = 50,
    task_name: str = "",
    state_in: Iterable[str] = (),
    object_type: str = "",
    object_id: str = "",
) -> list[dict[str, Any]]:
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


# --- REST API ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskStatus:
    """One task as Celery's AsyncResult reports it; an unknown id is PENDING, as Celery says."""

    task_id: str
    state: str
    task_name: str | None
    result: Any
    error: str | None
    traceback: str | None
    date_started: datetime | None
    date_done: datetime | None
    worker: str | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


def task_status(task_id: str) -> TaskStatus:
    """The state of task `task_id` read through `AsyncResult` (the result backend)."""
    from celery.result import AsyncResult

    from config.celery import app

    async_result: AsyncResult[Any] = AsyncResult(task_id, app=app)
    # One read of the backend: each property of a result that is not ready yet reads it again,
    # and could mix two states in one answer.
    meta: dict[str, Any] = cast(Any, async_result)._get_task_meta() or {}
    state = str(meta.get("status") or states.PENDING)
    value = meta.get("result")
    error = None
    if isinstance(value, BaseException):
        error = f"{type(value).__name__}: {value}"
        value = None
    elif state in (states.STARTED, states.PENDING):
        value = None  # a started task's "result" is the worker's pid and hostname
    # AsyncResult has no start time: our result backend adds the row's to the meta it reads
    # (scheduler/worker/result_backend.py); another backend has none.
    started = meta.get("date_started") if state != states.PENDING else None
    return TaskStatus(
        task_id=task_id,
        state=state,
        task_name=meta.get("task_name") or meta.get("name"),
        result=value,
        error=error,
        traceback=meta.get("traceback") or None,
        date_started=started,
        date_done=meta.get("date_done") if state in states.READY_STATES | {SKIPPED} else None,
        worker=meta.get("worker") or None,
    )


def task_history(
    *,
    task_name: str | None = None,
    periodic_task_name: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
) -> QuerySet[TaskResult]:
    """Stored results, newest first, unsliced (the API paginates it); filters as `task_results`."""
    queryset = TaskResult.objects.all()
    if task_name:
        queryset = queryset.filter(task_name=task_name)
    if periodic_task_name:
        queryset = queryset.filter(periodic_task_name=periodic_task_name)
    if status:
        queryset = queryset.filter(status=status)
    if since is not None:
        queryset = queryset.filter(date_done__gte=since)
    return queryset.order_by("-date_done", "-id")


def schedule_by_id(pk: int) -> PeriodicTask | None:
    return periodic_tasks_listed().filter(pk=pk).first()


def schedule_next_run(
    periodic_task: PeriodicTask, *, now: datetime | None = None
) -> datetime | None:
    """The next run of `periodic_task`, or None (disabled, spent, or a schedule we cannot read)."""
    try:
        runs = periodic_task_next_runs(periodic_task, count=1, now=now)
    except (ValueError, TypeError, KeyError):
        # A row hand-edited in the stock admin (a crontab field we cannot parse): the list of
        # schedules must still answer.
        logger.warning("cannot compute the next run of %r", periodic_task.name, exc_info=True)
        return None
    return runs[0] if runs else None


# --- Dashboard -----------------------------------------------------------------------------------

# The states a run ends in.
# The dashboard's periodic tasks table and its upcoming-runs heatmap read bounded slices, so
# that a deployment with tens of thousands of schedules still gets its page in milliseconds.
DASHBOARD_PERIODIC_TASKS = 100
DASHBOARD_RECENT_RUNS = 20
UPCOMING_MAX_SCHEDULES = 200
UPCOMING_PER_SCHEDULE = 100


def _event_wins(row: dict[str, Any], state: str, at: datetime) -> bool:
    # Events of one task come from several processes (the web process queues it, a worker runs
    # it) and a worker writes them in batches: order by time, except that nothing undoes an end.
    if row["at"] is None or at >= row["at"]:
        return True
    return state in FINISHED_STATES and row["state"] not in FINISHED_STATES


# The states the feed's filter offers (the websocket accepts a few more: see consumers.py).
FEED_STATES = ("PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED", SKIPPED)
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
        if _event_wins(row, event.state, event.created_at):
            row["state"] = event.state
            row["at"] = event.created_at
            row["message"] = event.message
    newest = sorted(rows.values(), key=lambda row: row["queued_at"], reverse=True)
    return newest[:limit]


PENDING_EVENTS = ("task.queued", "task.retried", "task.started")


def _pending_since(since: datetime) -> list[tuple[str, str, datetime]]:
    """(task id, event type, at) of the tasks seen since `since` whose latest event says queued,
    retried or started, newest first.

    Each task's events since then ranked newest first, in one pass over that window (indexed by
    time). A task's later events are in the window too, so its latest there is its latest. A
    "no later event" probe per event cost one index lookup each: 160 ms for an hour of a busy
    deployment (40,000 events).
    """
    from django.db.models import F, Window
    from django.db.models.functions import FirstValue, RowNumber

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

    from django.db.models.functions import TruncMinute

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


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile: the smallest value with `fraction` of the values at or
    below it (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))  # ceil without floats drifting past n
    return ordered[int(rank) - 1]


def periodic_task_recent_runs(
    names: Iterable[str], *, runs: int = DASHBOARD_RECENT_RUNS
) -> dict[str, list[dict[str, Any]]]:
    """name -> its last `runs` ended runs, oldest first (`{"state", "duration", "at"}`).

    One statement whatever the number of names, made of one bounded read per name: the newest
    `runs` entries of the (periodic_task_name, date_done) index. Ranking every run of every
    schedule with a window function read the whole history instead.
    """
    wanted = sorted(set(names))
    if not wanted:
        return {}
    using = router.db_for_read(TaskResult)
    connection = connections[using]
    if connection.vendor == "postgresql":
        rows = _recent_runs_lateral(connection, wanted, runs=runs)
    else:
        rows = _recent_runs_union(connection, wanted, runs=runs, using=using)
    found: dict[str, list[dict[str, Any]]] = {}
    for name, state, started, done in rows:
        started, done = _stored_datetime(started), _stored_datetime(done)
        duration = (done - started).total_seconds() if started and done else None
        found.setdefault(name, []).append({"state": state, "duration": duration, "at": done})
    for name_runs in found.values():
        name_runs.sort(key=lambda run: run["at"])
    return found


def _recent_runs_lateral(connection: Any, names: list[str], *, runs: int) -> list[tuple[Any, ...]]:
    # PostgreSQL: the names as an array, each joined to its own bounded read. Planned once: a
    # UNION of a hundred reads cost twice as long to plan as to run.
    quote = connection.ops.quote_name
    table = quote(TaskResult._meta.db_table)
    name, status = quote("periodic_task_name"), quote("status")
    started, done, pk = quote("date_started"), quote("date_done"), quote("id")
    sql = (
        f"SELECT wanted.name, recent.{status}, recent.{started}, recent.{done} "  # noqa: S608
        "FROM unnest(%s::text[]) AS wanted(name) CROSS JOIN LATERAL ("
        f"SELECT {status}, {started}, {done} FROM {table} "
        f"WHERE {name} = wanted.name AND {status} = ANY(%s) "
        f"ORDER BY {done} DESC, {pk} DESC LIMIT %s) AS recent"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [names, sorted(FINISHED_STATES), runs])
        return list(cursor.fetchall())


def _recent_runs_union(
    connection: Any, names: list[str], *, runs: int, using: str
) -> list[tuple[Any, ...]]:
    # Compiled once, for a name no periodic task has; each name's read is that with its own.
    marker = "\x00recent runs of\x00"
    latest = (
        TaskResult.objects.using(using)
        .filter(periodic_task_name=marker, status__in=sorted(FINISHED_STATES))
        .order_by("-date_done", "-id")
        .values_list("periodic_task_name", "status", "date_started", "date_done")[:runs]
    )
    sql, arm_params = latest.query.get_compiler(using=using).as_sql()
    rows: list[tuple[Any, ...]] = []
    # SQLite joins at most 500 selects in one compound statement.
    for start in range(0, len(names), 400):
        parts: list[str] = []
        params: list[Any] = []
        for k, name in enumerate(names[start : start + 400]):
            # Each read in a subquery of its own: SQLite takes no LIMIT on a compound's members.
            parts.append(f"SELECT * FROM ({sql}) AS recent_{k}")  # noqa: S608 (compiled by Django)
            params.extend(name if value == marker else value for value in arm_params)
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            rows.extend(cursor.fetchall())
    return rows


def _stored_datetime(value: Any) -> datetime | None:
    # Read through a subquery, SQLite's columns lose the declared type that makes its driver
    # parse them: the text comes back as it is stored (UTC, without an offset).
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
        if value is None:
            return None
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return cast(datetime, value)


def run_stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate and p50/p95 duration of runs that succeeded or failed (skipped and revoked
    runs did not try, so they count for neither)."""
    tried = [run for run in runs if run["state"] in (states.SUCCESS, states.FAILURE)]
    durations = [run["duration"] for run in tried if run["duration"] is not None]
    succeeded = sum(1 for run in tried if run["state"] == states.SUCCESS)
    return {
        "success_rate": succeeded / len(tried) if tried else None,
        "p50": percentile(durations, 0.50),
        "p95": percentile(durations, 0.95),
    }


def _next_runs_or_none(
    periodic_task: PeriodicTask, *, count: int, now: datetime, until: datetime | None = None
) -> list[datetime]:
    try:
        return periodic_task_next_runs(periodic_task, count=count, now=now, until=until)
    except Exception:
        # A row hand-edited in the stock admin that our parser cannot read: the dashboard must
        # still render, showing no next run for it.
        logging.getLogger(__name__).warning(
            "cannot compute the next runs of %r", periodic_task.name, exc_info=True
        )
        return []


def periodic_tasks_dashboard(
    *, now: datetime, limit: int = DASHBOARD_PERIODIC_TASKS, runs: int = DASHBOARD_RECENT_RUNS
) -> dict[str, Any]:
    """The first `limit` periodic tasks by name with their schedule in words, next run, last
    run status, recent runs and run statistics: three queries whatever `limit` is."""
    from scheduler.catalog import load_catalog
    from scheduler.services import schedule_describe

    catalog = load_catalog()
    tasks = list(periodic_tasks_listed()[:limit])
    recent = periodic_task_recent_runs([task.name for task in tasks], runs=runs)
    rows = []
    for task in tasks:
        task_runs = recent.get(task.name, [])
        next_runs = _next_runs_or_none(task, count=1, now=now)
        rows.append(
            {
                "id": task.pk,
                "name": task.name,
                "task": task.task,
                # False: shown as "outside the catalog" (scheduler/catalog.py).
                "in_catalog": task.task in catalog,
                "schedule": schedule_describe(task),
                "enabled": task.enabled,
                "next_run": next_runs[0] if next_runs else None,
                # The time of the run whose status is shown: beat's `last_run_at` is not set
                # by Run now, and django-celery-beat clears it when a task is paused.
                "last_run_at": task_runs[-1]["at"] if task_runs else task.last_run_at,
                "last_status": task_runs[-1]["state"] if task_runs else "",
                "runs": task_runs,
                "total_run_count": task.total_run_count,
                **run_stats(task_runs),
            }
        )
    total = len(tasks) if len(tasks) < limit else PeriodicTask.objects.count()
    return {"rows": rows, "total": total}


def upcoming_runs(
    *,
    now: datetime,
    hours: int = 24,
    slot_minutes: int = 30,
    per_schedule: int = UPCOMING_PER_SCHEDULE,
    max_schedules: int = UPCOMING_MAX_SCHEDULES,
) -> dict[str, Any]:
    """The runs of enabled schedules in the next `hours`, counted per slot of `slot_minutes`,
    per schedule and in total, so that collisions show (everything at midnight).

    Bounded: the first `max_schedules` enabled schedules by name, and at most `per_schedule`
    runs each. A schedule with more is marked `frequent` and left out of the totals: it runs all
    day long, and counting it would drown the collisions the totals are there to show.
    """
    slot = timedelta(minutes=slot_minutes)
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    start = now - (now - epoch) % slot
    until = now + timedelta(hours=hours)
    slot_count = -(-(until - start) // slot)
    totals = [0] * slot_count
    schedules = list(periodic_tasks_listed(enabled=True)[:max_schedules])
    rows = []
    for periodic_task in schedules:
        after = now
        if periodic_task.start_time is not None and periodic_task.start_time > now:
            after = periodic_task.start_time
        end = until
        if periodic_task.expires is not None:
            end = min(end, periodic_task.expires)
        runs = _next_runs_or_none(periodic_task, count=per_schedule + 1, now=after, until=end)
        frequent = len(runs) > per_schedule
        runs = runs[:per_schedule]
        if not runs:
            continue
        counts = [0] * slot_count
        for run in runs:
            counts[min(int((run - start) // slot), slot_count - 1)] += 1
        if not frequent:
            totals = [total + count for total, count in zip(totals, counts, strict=True)]
        rows.append(
            {
                "id": periodic_task.pk,
                "name": periodic_task.name,
                "task": periodic_task.task,
                "first": runs[0],
                "runs": len(runs),
                "frequent": frequent,
                "counts": counts,
            }
        )
    rows.sort(key=lambda row: (row["frequent"], row["first"], row["name"]))
    busiest = max(range(slot_count), key=lambda k: totals[k]) if any(totals) else None
    return {
        "start": start,
        "until": until,
        "slot_minutes": slot_minutes,
        "slots": [start + slot * k for k in range(slot_count)],
        "totals": totals,
        "rows": rows,
        # The first of the busiest slots, and how many slots are as busy.
        "busiest": (
            {
                "at": start + slot * busiest,
                "runs": totals[busiest],
                "slots": totals.count(totals[busiest]),
            }
            if busiest is not None
            else None
        ),
        "per_schedule": per_schedule,
        "schedules_read": len(schedules),
        "schedules_enabled": (
            len(schedules)
            if len(schedules) < max_schedules
            else PeriodicTask.objects.filter(enabled=True).count()
        ),
    }


def result_error(result: TaskResult) -> str:
    """'ValueError: bad input': the exception a failed result stored, in one line."""
    try:
        stored = json.loads(result.result or "null")
    except ValueError:
        stored = None
    if isinstance(stored, dict) and stored.get("exc_type"):
        message = stored.get("exc_message")
        if isinstance(message, list | tuple):
            message = " ".join(str(part) for part in message)
        return f"{stored['exc_type']}: {message}" if message else str(stored["exc_type"])
    lines = [line for line in (result.traceback or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


ERROR_SUMMARY_LENGTH = 200


def error_summary(text: str, *, length: int = ERROR_SUMMARY_LENGTH) -> str:
    """A stored error as one line of plain text: its first line with any markup stripped, cut
    at `length` characters (the failures panel; the whole error is on the task page)."""
    lines = text_lines(text)
    line = lines[0] if lines else ""
    if line.endswith(":") and len(lines) > 1:
        line = f"{line} {lines[1]}"  # "RuntimeError:" then the page that came with it
    return shortened(line, length)


def task_failures(*, limit: int = 20) -> list[dict[str, Any]]:
    """The latest failed runs, newest first, with their error and whether they can be retried
    (catalog tasks only: a retry goes through the same validation as a new run)."""
    from scheduler.catalog import load_catalog

    known = load_catalog()
    # Any: mypy misses some of django-celery-results' columns (periodic_task_name, worker).
    results: Any = TaskResult.objects.filter(status=states.FAILURE).order_by("-date_done", "-id")
    return [
        {
            "task_id": result.task_id,
            "task_name": result.task_name or "",
            "periodic_task_name": result.periodic_task_name or "",
            "worker": result.worker or "",
            "date_done": result.date_done,
            "error": error_summary(result_error(result)),
            "retryable": (result.task_name or "") in known,
        }
        for result in results[:limit]
    ]


def workers_and_queues(*, window: float | None = None) -> dict[str, Any]:
    """Workers heard from in the last `window` seconds and each queue's depth; a broker that
    cannot be read is reported in `error`, not raised (the dashboard must still render)."""

    from scheduler.observability.worker_heartbeats import workers_seen_within

    window = settings.WORKER_HEALTH_WINDOW if window is None else window
    try:
        seen = workers_seen_within(window)
        depths = queue_depths()
    except Exception as exc:
        return {"workers": [], "queues": [], "window": window, "error": str(exc), "beat": None}
    return {
        "beat": beat_overview(),
        "workers": [
            {"name": name, "last_seen": datetime.fromtimestamp(at, tz=UTC)}
            for name, at in sorted(seen.items())
        ],
        "queues": [
            {"name": name, "depth": depths.get(name, 0), "purpose": spec.purpose}
            for name, spec in QUEUES.items()
        ],
        "window": window,
        "error": "",
    }


def beat_overview() -> dict[str, Any] | None:
    """The beat leader's heartbeat, its standbys and the runs its watchdog flagged; None when
    no beat has recorded a heartbeat (or Redis cannot be read)."""

    from scheduler.observability.health import beat_heartbeat, beat_standbys, missed_runs

    try:
        heartbeat = beat_heartbeat()
        standbys = beat_standbys()
        flagged = missed_runs()
    except Exception:
        return None
    if heartbeat is None and not standbys:
        return None
    return {
        "leader": (heartbeat or {}).get("leader") or (heartbeat or {}).get("id") or "",
        "seconds_ago": round(time.time() - float(heartbeat["at"]), 1) if heartbeat else None,
        "entries": (heartbeat or {}).get("entries"),
        "standbys": [standby.get("id", "") for standby in standbys],
        "missed": [
            {"name": name, "task_id": run.get("task_id", ""), "at": run.get("published_at", "")}
            for name, run in sorted(flagged.items())
        ],
    }


def dashboard_summary(*, now: datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard's slower panels show, as of `now` (the page renders it and its
    script re-reads it every half minute, counting live events in between)."""
    now = now or timezone.now()
    since = now - timedelta(hours=1)
    pending = _pending_since(since)
    return {
        "generated_at": now,
        "counts": task_activity_since(since, pending=pending),
        "in_flight": tasks_in_flight_since(since, pending=pending),
        "throughput": task_throughput(now=now),
        "periodic": periodic_tasks_dashboard(now=now),
        "upcoming": upcoming_runs(now=now),
        "failures": task_failures(),
        "cluster": workers_and_queues(),
    }


def _stored_text(raw: str | None, *, masked: bool = False) -> str:
    """A results-backend text column (JSON, or JSON of a Python repr) as indented text.

    `masked`: arguments, shown with the values of secret keys masked (scheduler/core/masking.py).
    """
    text: Any = raw or ""
    for _ in range(2):  # the backend stores args and kwargs as JSON strings of their repr
        if not isinstance(text, str):
            break
        try:
            text = json.loads(text)
        except ValueError:
            try:
                text = ast.literal_eval(text)
            except (ValueError, SyntaxError, RecursionError, MemoryError):
                break
    if isinstance(text, str):
        return masking.masked_text(text) if masked else text
    if masked:
        text = masking.masked(text)
    return json.dumps(text, indent=2, sort_keys=True, default=str)


def stored_arguments(raw: str | None) -> str:
    """A result's stored args or kwargs as indented text, secret values masked."""
    return _stored_text(raw, masked=True)


_CHAINED = ("\n\nThe above exception was the direct cause", "\n\nDuring handling of the above")


def traceback_response(traceback: str | None) -> tuple[str, str, str]:
    """A failed run's traceback split around the receiver's answer a webhook error noted in it
    (scheduler/system/notifications.py): (traceback without it, the note's heading, the answer)."""
    text = traceback or ""
    found = re.search(rf"^{re.escape(RESPONSE_NOTE)} \([^\n]*\):\n", text, flags=re.MULTILINE)
    if found is None:
        return text, "", ""
    ends = [i for i in (text.find(mark, found.end()) for mark in _CHAINED) if i >= 0]
    end = min(ends, default=len(text))
    heading = found.group(0).strip().rstrip(":")
    rest = text[end:].lstrip("\n")
    without = text[: found.start()] + ("\n" + rest if rest else "")
    return without, heading, text[found.end() : end]


def task_detail(task_id: str) -> dict[str, Any] | None:
    """One task's stored result (None until a worker stored one), its events oldest first, and
    its periodic task when it still exists; None when nothing is known of `task_id`."""
    from scheduler.catalog import load_catalog

    result: Any = TaskResult.objects.filter(task_id=task_id).first()  # Any: see task_failures
    events = list(TaskEvent.objects.filter(task_id=task_id).order_by("created_at", "id")[:500])
    if result is None and not events:
        return None
    names = [result.periodic_task_name if result else "", *(e.periodic_task_name for e in events)]
    periodic_task_name = next((name for name in names if name), "")
    task_names = [result.task_name if result else "", *(e.task_name for e in events)]
    periodic_task = (
        PeriodicTask.objects.filter(name=periodic_task_name).only("id", "name").first()
        if periodic_task_name
        else None
    )
    state = result.status if result is not None else ""
    if events:
        latest: dict[str, Any] = {"at": None, "state": ""}
        for event in events:
            if _event_wins(latest, event.state, event.created_at):
                latest = {"at": event.created_at, "state": event.state}
        # The stored result is written once per state change; a newer event may say more.
        if not state or (state not in FINISHED_STATES and latest["state"]):
            state = latest["state"]
    task_name = next((name for name in task_names if name), "")
    return {
        "task_id": task_id,
        "task_name": task_name,
        "state": state,
        "result": result,
        "error": result_error(result) if result and result.status == states.FAILURE else "",
        # (traceback, heading, body): a webhook's answer apart from the traceback.
        "traceback": traceback_response(result.traceback if result else ""),
        "retryable": state == states.FAILURE and result is not None and task_name in load_catalog(),
        "arguments": stored_arguments(result.task_kwargs) if result else "",
        "positional": stored_arguments(result.task_args) if result else "",
        "output": _stored_text(result.result) if result else "",
        "queue": next((e.payload.get("queue", "") for e in events if e.type == "task.queued"), ""),
        "events": events,
        "periodic_task_name": periodic_task_name,
        "periodic_task": periodic_task,
        "worker": (result.worker if result else "")
        or next((e.worker for e in reversed(events) if e.worker), ""),
        "duration": next((e.duration for e in reversed(events) if e.duration is not None), None),
    }
