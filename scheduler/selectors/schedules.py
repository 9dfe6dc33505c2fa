"""Reads of periodic tasks: lists and counts, next runs, recent runs and their statistics,
the dashboard's schedules table and its upcoming-runs heatmap."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from celery import states
from django.db import connections, router
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from scheduler.catalog import load_catalog
from scheduler.core.formatting import percentile
from scheduler.models import AuditEntry, DeclaredState
from scheduler.protocol import FINISHED_STATES, object_of
from scheduler.schedules.declared import drifted_fields
from scheduler.schedules.pauses import pause_dict
from scheduler.schedules.rows import periodic_task_next_runs, schedule_describe

# --- Periodic tasks ------------------------------------------------------------------------------

logger = logging.getLogger(__name__)


def periodic_tasks_listed(*, enabled: bool | None = None) -> QuerySet[PeriodicTask]:
    """Periodic tasks by name with what listing them needs; all, or only enabled/disabled."""
    # options__paused_by: who paused it, shown with the pause (a join, not a query per row).
    queryset = PeriodicTask.objects.select_related(
        "interval", "crontab", "clocked", "solar", "options__paused_by", "declared"
    ).order_by("name")
    if enabled is not None:
        queryset = queryset.filter(enabled=enabled)
    return queryset


def schedule_owner_of(periodic_task: PeriodicTask) -> tuple[str, str] | None:
    """The domain object (type, id) a periodic task belongs to: its object header, which the
    schedule services keep (scheduler/services/owners.py)."""
    try:
        headers = json.loads(periodic_task.headers or "{}")
    except json.JSONDecodeError:
        return None
    return object_of(headers)


def schedule_names_owned(object_type: str, object_ids: Iterable[object]) -> dict[str, list[str]]:
    """The names of the periodic tasks that belong to each of these `object_type` objects, by
    the object's id (as text); an object that has none is left out."""
    wanted = {str(object_id) for object_id in object_ids}
    if not wanted:
        return {}
    # The headers are text: the rows that mention a wanted value, then read as JSON.
    mentions = Q()
    for object_id in wanted:
        mentions |= Q(headers__contains=f'"{object_type}:{object_id}"')
    owned: dict[str, list[str]] = {}
    for row in PeriodicTask.objects.filter(mentions).only("name", "headers").order_by("name"):
        owner = schedule_owner_of(row)
        if owner is not None and owner[0] == object_type and owner[1] in wanted:
            owned.setdefault(owner[1], []).append(row.name)
    return owned


def periodic_tasks_matching(
    *,
    task: str | None = None,
    queue: str | None = None,
    name_contains: str | None = None,
    names: Iterable[str] | None = None,
) -> QuerySet[PeriodicTask]:
    """Periodic tasks by name that run `task`, on `queue`, named with `name_contains` (any
    case), among `names`; a filter left None chooses all."""
    queryset = periodic_tasks_listed()
    if task is not None:
        queryset = queryset.filter(task=task)
    if queue is not None:
        queryset = queryset.filter(queue=queue)
    if name_contains:
        queryset = queryset.filter(name__icontains=name_contains)
    if names is not None:
        queryset = queryset.filter(name__in=list(names))
    return queryset


def periodic_task_counts() -> dict[str, int]:
    counts = PeriodicTask.objects.aggregate(
        on=Count("pk", filter=Q(enabled=True)), off=Count("pk", filter=Q(enabled=False))
    )
    return {"enabled": counts["on"], "disabled": counts["off"]}


def audit_trail(name: str, *, limit: int = 20) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(periodic_task_name=name).select_related("actor")[:limit]


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

# The dashboard's periodic tasks table and its upcoming-runs heatmap read bounded slices, so
# that a deployment with tens of thousands of schedules still gets its page in milliseconds.
DASHBOARD_PERIODIC_TASKS = 100
DASHBOARD_RECENT_RUNS = 20
UPCOMING_MAX_SCHEDULES = 200
UPCOMING_PER_SCHEDULE = 100


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
                # False: shown as "outside the catalog" (scheduler/catalog/).
                "in_catalog": task.task in catalog,
                "schedule": schedule_describe(task),
                "enabled": task.enabled,
                # Who paused it, why, until when (None: running, or disabled without a note).
                "pause": pause_dict(task),
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


def declared_drift_count() -> int:
    """How many schedules declared in code staff changed since the last `scheduler sync`
    (one row per declaration: a deployment declares dozens, not thousands)."""
    states = DeclaredState.objects.select_related(
        "periodic_task__options",
        "periodic_task__interval",
        "periodic_task__crontab",
        "periodic_task__clocked",
        "periodic_task__solar",
    )
    return sum(1 for state in states if drifted_fields(state.periodic_task, state.fields))


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
        row = _upcoming_row(
            periodic_task,
            now=now,
            until=until,
            start=start,
            slot=slot,
            slot_count=slot_count,
            per_schedule=per_schedule,
        )
        if row is None:
            continue
        if not row["frequent"]:
            totals = [total + count for total, count in zip(totals, row["counts"], strict=True)]
        rows.append(row)
    rows.sort(key=lambda row: (row["frequent"], row["first"], row["name"]))
    return {
        "start": start,
        "until": until,
        "slot_minutes": slot_minutes,
        "slots": [start + slot * k for k in range(slot_count)],
        "totals": totals,
        "rows": rows,
        "busiest": _busiest_slot(totals, start=start, slot=slot),
        "per_schedule": per_schedule,
        "schedules_read": len(schedules),
        "schedules_enabled": (
            len(schedules)
            if len(schedules) < max_schedules
            else PeriodicTask.objects.filter(enabled=True).count()
        ),
    }


def _upcoming_row(
    periodic_task: PeriodicTask,
    *,
    now: datetime,
    until: datetime,
    start: datetime,
    slot: timedelta,
    slot_count: int,
    per_schedule: int,
) -> dict[str, Any] | None:
    """One schedule's row of `upcoming_runs`: its runs counted per slot, between its own start
    and expiry; None when it has no run before `until`."""
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
        return None
    counts = [0] * slot_count
    for run in runs:
        counts[min(int((run - start) // slot), slot_count - 1)] += 1
    return {
        "id": periodic_task.pk,
        "name": periodic_task.name,
        "task": periodic_task.task,
        "first": runs[0],
        "runs": len(runs),
        "frequent": frequent,
        "counts": counts,
    }


def _busiest_slot(totals: list[int], *, start: datetime, slot: timedelta) -> dict[str, Any] | None:
    """The first of the busiest slots, and how many slots are as busy; None when none has a
    run."""
    if not any(totals):
        return None
    busiest = max(range(len(totals)), key=lambda k: totals[k])
    return {
        "at": start + slot * busiest,
        "runs": totals[busiest],
        "slots": totals.count(totals[busiest]),
    }
