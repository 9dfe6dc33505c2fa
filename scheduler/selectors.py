"""Reads for the dashboard, the API and the CLI."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from celery import states
from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_results.models import TaskResult
from kombu.transport.redis import PRIORITY_STEPS

from config.queues import QUEUES
from scheduler.events import LEVELS, event_payload
from scheduler.models import AuditEntry, TaskEvent
from scheduler.parsing import CrontabSpec, IntervalSpec, ParsedSchedule, Period
from scheduler.redis_connection import get_redis
from scheduler.runs import SKIPPED


def recent_task_results(*, limit: int = 25) -> QuerySet[TaskResult]:
    return TaskResult.objects.order_by("-date_created")[:limit]


def periodic_tasks_overview() -> QuerySet[PeriodicTask]:
    return PeriodicTask.objects.select_related("interval", "crontab", "clocked", "solar").order_by(
        "name"
    )


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


def periodic_task_schedule(periodic_task: PeriodicTask) -> ParsedSchedule | None:
    """The schedule beat runs, read from the schedule rows (not the phrase): None for solar.

    The rows, not `ScheduleOptions.phrase`, are the truth: a relative one-off ('in 5 minutes')
    read again later would move, and staff may have edited the stock fields in the admin.
    """
    from scheduler.services import schedule_describe

    description = schedule_describe(periodic_task)
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
    periodic_task: PeriodicTask, *, count: int, now: datetime | None = None
) -> list[datetime]:
    """When beat will next run `periodic_task` (empty when disabled, spent or unknown)."""
    now = now or timezone.now()
    schedule = periodic_task_schedule(periodic_task)
    if schedule is None or not periodic_task.enabled:
        return []
    if periodic_task.one_off and periodic_task.total_run_count:
        return []
    if schedule.interval is not None and periodic_task.last_run_at is not None:
        # Beat counts an interval from the last run; one already overdue is due right now.
        step = timedelta(seconds=schedule.interval.seconds)
        first = max(periodic_task.last_run_at + step, now)
        return [first + step * k for k in range(count)]
    return schedule.next_runs(count, now=now)


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
