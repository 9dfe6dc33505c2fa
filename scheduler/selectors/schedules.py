"""Reads of periodic tasks: lists and counts, next runs, recent runs and their statistics,
the dashboard's schedules table and its upcoming-runs heatmap."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from celery import states
from django.conf import settings
from django.db import connections, router
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_celery_beat.models import PeriodicTask, PeriodicTasks
from django_celery_results.models import TaskResult

from scheduler.catalog import load_catalog
from scheduler.core.formatting import percentile
from scheduler.models import AuditEntry, DeclaredState, ScheduleState
from scheduler.protocol import FINISHED_STATES, OBJECT_HEADER, RunState, object_of
from scheduler.schedules.declared import drifted_fields
from scheduler.schedules.pauses import pause_dict
from scheduler.schedules.rows import (
    options_of,
    periodic_task_next_runs,
    periodic_task_schedule,
    schedule_describe,
)

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

# The dashboard's periodic tasks table reads a bounded page, so that a deployment with tens of
# thousands of schedules still gets its page in milliseconds.
DASHBOARD_PERIODIC_TASKS = 100
DASHBOARD_RECENT_RUNS = 20
# Rows of the upcoming-runs heatmap past which schedules share rows (every enabled schedule
# is counted, however many).
UPCOMING_MAX_ROWS = 200
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


def _dashboard_rows(tasks: list[PeriodicTask], *, now: datetime, runs: int) -> list[dict[str, Any]]:
    """The dashboard's row of each of `tasks` (a page: one bounded read of recent runs for all
    of them)."""
    catalog = load_catalog()
    recent = periodic_task_recent_runs([task.name for task in tasks], runs=runs)
    rows = []
    for task in tasks:
        task_runs = recent.get(task.name, [])
        next_runs = _next_runs_or_none(task, count=1, now=now)
        options = options_of(task)
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
                "failure_streak": options.failure_streak if options is not None else 0,
                "owner": schedule_owner(task),
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
    return rows


def schedule_owner(periodic_task: PeriodicTask) -> dict[str, str] | None:
    """The domain object a schedule belongs to (`{"type": "agent", "id": "7"}`), as its runs'
    object header names it; None when it belongs to none."""
    owner = schedule_owner_of(periodic_task)
    return {"type": owner[0], "id": owner[1]} if owner is not None else None


def periodic_tasks_dashboard(
    *, now: datetime, limit: int = DASHBOARD_PERIODIC_TASKS, runs: int = DASHBOARD_RECENT_RUNS
) -> dict[str, Any]:
    """The first `limit` periodic tasks by name with their schedule in words, next run, last
    run status, recent runs and run statistics: three queries whatever `limit` is."""
    tasks = list(periodic_tasks_listed()[:limit])
    rows = _dashboard_rows(tasks, now=now, runs=runs)
    total = len(tasks) if len(tasks) < limit else PeriodicTask.objects.count()
    return {"rows": rows, "total": total}


# --- Dashboard: schedules searched, filtered and paged ---------------------------------------

# The domain objects that own schedules: their schedules' runs carry the object header
# ("agent:7"), which agents/services.py and tournaments/services.py write when they make one.
OWNER_TYPES = ("agent", "tournament")
# `owner=none`: schedules that belong to no domain object.
OWNER_NONE = "none"
SCHEDULES_PAGE_SIZE = 50
SCHEDULES_PAGE_MAX = 200


@dataclass(frozen=True)
class ScheduleFilter:
    """Which periodic tasks a list shows: `search` in the name or task (any case); enabled or
    disabled; paused (disabled with a note of who paused it) or not; failing (its last run
    failed, or it has failed runs in a row) or not; `owner` a type of OWNER_TYPES, one object
    ("agent:7") or OWNER_NONE. None and "": either."""

    search: str = ""
    enabled: bool | None = None
    paused: bool | None = None
    failing: bool | None = None
    owner: str = ""

    @property
    def active(self) -> bool:
        return self != ScheduleFilter()

    def where(self) -> Q:
        """The filter as a condition on `PeriodicTask` (its options joined, its latest run
        looked up by primary key): no read of the run history."""
        where = Q()
        if self.search:
            where &= Q(name__icontains=self.search) | Q(task__icontains=self.search)
        if self.enabled is not None:
            where &= Q(enabled=self.enabled)
        if self.paused is not None:
            paused = Q(enabled=False, options__paused_at__isnull=False)
            not_paused = Q(enabled=True) | Q(options__paused_at__isnull=True)
            where &= paused if self.paused else not_paused
        if self.failing is not None:
            last_failed = Exists(
                ScheduleState.objects.filter(
                    periodic_task_name=OuterRef("name"), status=RunState.FAILURE
                )
            )
            failing = Q(options__failure_streak__gt=0) | Q(last_failed)
            no_streak = Q(options__failure_streak__isnull=True) | Q(options__failure_streak=0)
            where &= failing if self.failing else (no_streak & ~Q(last_failed))
        if self.owner:
            where &= self._owner_where()
        return where

    def _owner_where(self) -> Q:
        # The headers as services write them (json.dumps): alert rules on an object read
        # them the same way (scheduler/services/alert_watch.py).
        if self.owner == OWNER_NONE:
            return ~Q(headers__contains=f'"{OBJECT_HEADER}": "')
        if ":" in self.owner:
            return Q(headers__contains=f'"{OBJECT_HEADER}": "{self.owner}"')
        return Q(headers__contains=f'"{OBJECT_HEADER}": "{self.owner}:')


@dataclass(frozen=True)
class SchedulePage:
    """One page of a filtered list of periodic tasks by name: its rows, how many match in
    all, where the page starts among them (0: the first), and the cursors of the pages
    before and after it (None: there is none)."""

    rows: list[dict[str, Any]]
    total: int
    start: int
    before: str | None
    after: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "total": self.total,
            "start": self.start,
            "before": self.before,
            "after": self.after,
        }


def schedules_page(
    *,
    now: datetime,
    where: ScheduleFilter | None = None,
    after: str = "",
    before: str = "",
    limit: int = SCHEDULES_PAGE_SIZE,
    runs: int = DASHBOARD_RECENT_RUNS,
) -> SchedulePage:
    """The periodic tasks `where` matches, `limit` of them by name: those named after `after`,
    or the last ones before `before`, or the first ones.

    Keyset paging on the unique name's index, so that a page costs the same at the first or
    the five thousandth schedule: the page (with one extra row, to know whether more follow),
    two counts of the matching rows (in all, and before the page), and the page's recent runs
    (`periodic_task_recent_runs`, bounded by name). Four queries whatever the page.
    """
    where = where or ScheduleFilter()
    limit = max(1, min(limit, SCHEDULES_PAGE_MAX))
    matching = periodic_tasks_listed().filter(where.where())
    if before:
        tasks = list(matching.filter(name__lt=before).order_by("-name")[:limit])
        tasks.reverse()
    else:
        page = matching.filter(name__gt=after) if after else matching
        tasks = list(page[:limit])
    total = matching.count()
    if tasks:
        start = matching.filter(name__lt=tasks[0].name).count() if (after or before) else 0
    else:
        start = total if after else 0
    end = start + len(tasks)
    return SchedulePage(
        rows=_dashboard_rows(tasks, now=now, runs=runs),
        total=total,
        start=start,
        before=tasks[0].name if tasks and start > 0 else None,
        after=tasks[-1].name if tasks and end < total else None,
    )


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
    max_rows: int = UPCOMING_MAX_ROWS,
) -> dict[str, Any]:
    """The runs of every enabled schedule in the next `hours`, counted per slot of
    `slot_minutes`, per row and in total, so that collisions show (everything at midnight).

    A row is one schedule while they fit in `max_rows`; past that, schedules whose runs fall
    in the same slots share a row (schedules running all day: those of one task), and past
    that again the largest rows stay and the others are merged by the slot of their first run.
    Every row says how many schedules it holds: they add up, with `idle` (no run in the
    window), to `schedules_enabled`.

    At most `per_schedule` runs of a schedule are counted: one with more is `frequent` and left
    out of the totals, as it runs all day long and counting it would drown the collisions the
    totals are there to show.
    """
    slot = timedelta(minutes=slot_minutes)
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    start = now - (now - epoch) % slot
    until = now + timedelta(hours=hours)
    slot_count = -(-(until - start) // slot)
    window = _Window(
        now=now,
        until=until,
        start=start,
        slot=slot,
        slot_count=slot_count,
        per_schedule=per_schedule,
    )
    totals = [0] * slot_count
    rows = _UpcomingRows(max_rows=max_rows)
    enabled = idle = 0
    # Every enabled schedule, a chunk at a time; only what their timing reads is joined.
    schedules = (
        PeriodicTask.objects.filter(enabled=True)
        .select_related("interval", "crontab", "clocked", "solar", "options")
        .order_by("name")
    )
    for periodic_task in schedules.iterator(chunk_size=2000):
        enabled += 1
        row = _upcoming_row(periodic_task, window)
        if row is None:
            idle += 1
            continue
        if not row["frequent"]:
            totals = [total + count for total, count in zip(totals, row["counts"], strict=True)]
        rows.add(row)
    shown = rows.fitted(slot_count=slot_count)
    shown.sort(key=lambda row: (row["frequent"], row["first"], row["name"]))
    return {
        "start": start,
        "until": until,
        "slot_minutes": slot_minutes,
        "slots": [start + slot * k for k in range(slot_count)],
        "totals": totals,
        "rows": shown,
        "busiest": _busiest_slot(totals, start=start, slot=slot),
        "per_schedule": per_schedule,
        "schedules_enabled": enabled,
        "schedules_shown": enabled - idle,
        "idle": idle,
        "grouped": rows.grouped,
    }


@dataclass(frozen=True)
class _Window:
    now: datetime
    until: datetime
    start: datetime
    slot: timedelta
    slot_count: int
    per_schedule: int


def _upcoming_row(periodic_task: PeriodicTask, window: _Window) -> dict[str, Any] | None:
    """One schedule's row of `upcoming_runs`: its runs counted per slot, between its own start
    and expiry; None when it has no run before the window's end."""
    after = window.now
    if periodic_task.start_time is not None and periodic_task.start_time > after:
        after = periodic_task.start_time
    end = window.until
    if periodic_task.expires is not None:
        end = min(end, periodic_task.expires)
    counts = [0] * window.slot_count
    if _may_run_all_day(periodic_task, after=after, end=end, per_schedule=window.per_schedule):
        first = _next_runs_or_none(periodic_task, count=1, now=after, until=end)
        if first and _runs_all_day(periodic_task, first[0], end, window.per_schedule):
            # Told without listing its runs: a short interval makes most of the cost of
            # the heatmap, and the runs of a schedule that runs all day are not counted.
            return _row(periodic_task, first[0], window.per_schedule, True, counts)
    runs = _next_runs_or_none(periodic_task, count=window.per_schedule + 1, now=after, until=end)
    if not runs:
        return None
    frequent = len(runs) > window.per_schedule
    runs = runs[: window.per_schedule]
    if not frequent:
        for run in runs:
            counts[min(int((run - window.start) // window.slot), window.slot_count - 1)] += 1
    return _row(periodic_task, runs[0], len(runs), frequent, counts)


def _row(
    periodic_task: PeriodicTask, first: datetime, runs: int, frequent: bool, counts: list[int]
) -> dict[str, Any]:
    return {
        "id": periodic_task.pk,
        "name": periodic_task.name,
        "task": periodic_task.task,
        "first": first,
        "runs": runs,
        "frequent": frequent,
        "counts": counts,
        "schedules": 1,
        "names": [periodic_task.name],
    }


def _interval_seconds(periodic_task: PeriodicTask) -> int | None:
    schedule = periodic_task_schedule(periodic_task, describe=False)
    if schedule is None or schedule.interval is None:
        return None
    return schedule.interval.seconds


def _may_run_all_day(
    periodic_task: PeriodicTask, *, after: datetime, end: datetime, per_schedule: int
) -> bool:
    """Whether `periodic_task` is an interval schedule whose interval alone makes more than
    `per_schedule` runs between `after` and `end`, with no limit on its runs."""
    if periodic_task.interval is None or periodic_task.one_off:
        return False
    options = options_of(periodic_task)
    if options is not None and options.remaining_runs is not None:
        return False
    seconds = _interval_seconds(periodic_task)
    return seconds is not None and seconds * per_schedule < (end - after).total_seconds()


def _runs_all_day(
    periodic_task: PeriodicTask, first: datetime, end: datetime, per_schedule: int
) -> bool:
    """Whether runs due every interval from `first` on surely go out more than `per_schedule`
    times before `end`: the last of them is due `per_schedule` intervals after the first, and
    goes out at most its jitter later (a late first run only brings the next ones closer)."""
    seconds = _interval_seconds(periodic_task)
    if seconds is None:
        return False
    options = options_of(periodic_task)
    jitter = options.jitter if options is not None else 0
    return first + timedelta(seconds=seconds * per_schedule + jitter) < end


class _UpcomingRows:
    """The heatmap's rows as schedules are read: one per schedule while they fit in
    `max_rows`, then one per pattern (the same counts in the same slots; schedules running all
    day: one per task)."""

    def __init__(self, *, max_rows: int) -> None:
        self.max_rows = max_rows
        self.single: list[dict[str, Any]] = []
        self.groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.grouped = False

    def add(self, row: dict[str, Any]) -> None:
        if not self.grouped:
            self.single.append(row)
            if len(self.single) <= self.max_rows:
                return
            self.grouped = True
            for each in self.single:
                self._group(each)
            self.single = []
            return
        self._group(row)

    def _group(self, row: dict[str, Any]) -> None:
        key = ("frequent", row["task"]) if row["frequent"] else ("counts", *row["counts"])
        group = self.groups.get(key)
        if group is None:
            self.groups[key] = {**row, "counts": list(row["counts"]), "names": list(row["names"])}
            return
        _merge(group, row)

    def fitted(self, *, slot_count: int) -> list[dict[str, Any]]:
        """The rows to show: at most `max_rows`, or one per slot (and one for the schedules
        that run all day) when fewer."""
        if not self.grouped:
            return self.single
        groups = [_labelled(group) for group in self.groups.values()]
        if len(groups) <= self.max_rows:
            return groups
        keep = max(0, self.max_rows - slot_count - 1)
        groups.sort(key=lambda group: (-group["schedules"], group["first"], group["name"]))
        kept, rest = groups[:keep], groups[keep:]
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for group in rest:
            key = ("frequent",) if group["frequent"] else ("first", _first_slot(group))
            if key in merged:
                _merge(merged[key], group)
            else:
                merged[key] = {**group, "counts": list(group["counts"]), "names": group["names"]}
        return kept + [_labelled(group, merged=True) for group in merged.values()]


# The names a row of many schedules lists (as an example: its count says how many).
ROW_NAMES_SHOWN = 5


def _merge(group: dict[str, Any], row: dict[str, Any]) -> None:
    group["id"] = None
    group["schedules"] += row["schedules"]
    group["runs"] += row["runs"]
    group["counts"] = [a + b for a, b in zip(group["counts"], row["counts"], strict=True)]
    group["first"] = min(group["first"], row["first"])
    if group["task"] != row["task"]:
        group["task"] = ""
    if len(group["names"]) < ROW_NAMES_SHOWN:
        group["names"] = sorted([*group["names"], *row["names"]])[:ROW_NAMES_SHOWN]


def _first_slot(group: dict[str, Any]) -> int:
    return next((k for k, count in enumerate(group["counts"]) if count), 0)


def _labelled(group: dict[str, Any], *, merged: bool = False) -> dict[str, Any]:
    """`group` named for its row: the schedule's name when it holds one, else how many
    schedules (of which task, when they share one)."""
    if group["schedules"] == 1:
        return group
    many = f"{group['schedules']} schedules"
    of = f" of {group['task']}" if group["task"] else ""
    if merged and group["frequent"]:
        name = f"{many}{of}, each running all day"
    elif merged:
        name = f"{many}{of}, first running in this slot"
    else:
        name = f"{many}{of}"
    return {**group, "name": name}


@dataclass
class _SharedUpcoming:
    key: tuple[Any, ...] = ()
    now: datetime | None = None
    value: dict[str, Any] | None = None


_shared_upcoming = _SharedUpcoming()
_shared_lock = threading.Lock()


def upcoming_runs_shared(*, now: datetime) -> dict[str, Any]:
    """`upcoming_runs` as every open dashboard reads it each half minute: one reading shared by
    the requests of this process for DASHBOARD_UPCOMING_REUSE seconds (while its first slot is
    still the current one), read again as soon as a schedule changes.

    A change is told by django-celery-beat's change marker (one query), which every write of
    a schedule moves: the save signals, and our services after a queryset update, as beat
    relies on it too. The heatmap reads every enabled schedule: a second or more for thousands.
    """
    reuse = float(settings.DASHBOARD_UPCOMING_REUSE)
    if reuse <= 0:
        return upcoming_runs(now=now)
    key = (router.db_for_read(PeriodicTask), PeriodicTasks.last_change())
    with _shared_lock:
        shared = _shared_upcoming
        value = shared.value
        if value is not None and shared.key == key and shared.now is not None:
            slot_end = value["start"] + timedelta(minutes=value["slot_minutes"])
            if shared.now <= now < min(shared.now + timedelta(seconds=reuse), slot_end):
                return value
    value = upcoming_runs(now=now)
    with _shared_lock:
        _shared_upcoming.key, _shared_upcoming.now, _shared_upcoming.value = key, now, value
    return value


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
