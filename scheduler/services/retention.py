"""History retention: how long each growing table keeps its rows, and the cleanup that enforces it.

Each app registers a `RetentionPolicy` per growing table it owns (scheduler below; agents and
tournaments in their own `retention.py`, imported by their AppConfig, so that scheduler imports
neither): the model, the indexed datetime field that ages a row, the setting giving its days
(0: kept forever), optionally a scope (which rows may go at all), the parts a large scoped table
is deleted by (tournaments: entry by entry), and a callback after each deleted batch.

`retention_run` deletes table by table, in batches: a batch of primary keys is selected by a
range on an index (`field < cutoff`, newest first, starting where the previous batch ended),
then deleted by primary key, each batch its own short transaction. No statement holds its locks
for long, so workers keep storing results and pages stay fast while millions of rows go. On
PostgreSQL a table that lost many rows is vacuumed afterwards (see `_vacuum`). The
daily catalog task `scheduler.cleanup_results` runs `retention_cleanup`; the migration
`scheduler/0004_cleanup_schedule` schedules it on every deployment.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Min, Model, QuerySet
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from scheduler.models import AuditEntry, Incident, NotificationDelivery, ScheduleState, TaskEvent
from scheduler.observability.table_rows import counted_or_estimated
from scheduler.selectors import schedule_next_run
from scheduler.worker.schedule_state import schedule_states_rebuild

logger = logging.getLogger(__name__)

CLEANUP_TASK = "scheduler.cleanup_results"
# The periodic task the migration creates (and the demo used to): one per deployment.
CLEANUP_SCHEDULE_NAME = "system: clean up results"

RESULTS = "task results"
EVENTS = "task events"
AUDIT = "audit entries"
# What `clear-history` and the cleanup task's `days` override apply to.
HISTORY_TABLES = (RESULTS, EVENTS)

# SQLite takes at most 32,766 variables in a statement, and a batch's DELETE names each row.
MAX_BATCH_SIZE = 20_000
# Tables up to this size are counted; larger ones are estimated, so that the admin's index
# page never counts millions of rows.
EXACT_COUNT_UP_TO = 10_000
# Enabled cleanup schedules looked at for the next cleanup (there is normally one).
_CLEANUP_SCHEDULES_READ = 20

# (rows of the table older than the cutoff, the cutoff or None for all) -> the rows that may go.
Scope = Callable[[QuerySet[Any], datetime | None], QuerySet[Any]]
# The primary keys of a batch just deleted (committed).
AfterBatch = Callable[[Sequence[Any]], None]
# (the cutoff or None for all) -> filters, one per part of the table to delete from.
Partitions = Callable[[datetime | None], Iterable[dict[str, Any]]]


@dataclass(frozen=True)
class RetentionPolicy:
    label: str  # "task results": shown to staff, and the key of `retention_run`'s answer
    model: type[Model]
    field: str  # the datetime that ages a row; it must be indexed (the batches range on it)
    setting: str  # days kept; 0, empty or missing: kept forever
    scope: Scope | None = None
    scope_description: str = ""  # "after the tournament ended", after "N days"
    # Large scoped tables: the filters of the parts deleted one after the other (e.g. one entry
    # of an ended tournament each), and the column the batches of a part walk through, indexed
    # after the part's own columns. Without them a batch's query would join the whole scope
    # and sort it, once per batch.
    partitions: Partitions | None = None
    order: str | None = None  # default: `field`
    after_batch: AfterBatch | None = None

    def days(self) -> int | None:
        """Days rows are kept, or None: forever."""
        return int(getattr(settings, self.setting, 0) or 0) or None

    def rows(self, cutoff: datetime | None) -> QuerySet[Any]:
        """Rows that may be deleted: older than `cutoff` (None: of any age), within the scope."""
        rows = self.model._default_manager.order_by()
        if cutoff is not None:
            rows = rows.filter(**{f"{self.field}__lt": cutoff})
        if self.scope is not None:
            rows = self.scope(rows, cutoff)
        return rows


_POLICIES: dict[str, RetentionPolicy] = {}


def retention_register(policy: RetentionPolicy) -> None:
    """Add a table to the cleanup. Tables are cleaned in the order they were registered."""
    # By label: registering again (a module imported twice) replaces, never duplicates.
    _POLICIES[policy.label] = policy


def retention_policies() -> list[RetentionPolicy]:
    return list(_POLICIES.values())


def _policies_named(tables: Iterable[str] | None) -> list[RetentionPolicy]:
    if tables is None:
        return retention_policies()
    wanted = list(tables)
    unknown = [label for label in wanted if label not in _POLICIES]
    if unknown:
        raise ValueError(
            f"no retention for {', '.join(map(repr, unknown))} "
            f"(tables: {', '.join(map(repr, _POLICIES))})"
        )
    return [policy for label, policy in _POLICIES.items() if label in wanted]


class Deleted(dict[str, int]):
    """Rows deleted per table label. `complete` is False when the time budget ran out first:
    the rest goes at the next run."""

    complete: bool = True


def retention_run(
    *,
    now: datetime | None = None,
    batch_size: int | None = None,
    tables: Iterable[str] | None = None,
    older_than_days: int | None = None,
    time_budget: float | None = None,
) -> Deleted:
    """Delete the rows each table keeps no longer (its setting, or `older_than_days` for every
    table named), in batches; how many went, per table. Tables kept forever are left alone
    unless `older_than_days` is given.

    `time_budget` (seconds) stops between two batches once spent, so that a first cleanup of a
    long history ends before its task's time limit instead of failing in the middle.
    """
    now = now or timezone.now()
    if older_than_days is not None and older_than_days < 0:
        raise ValueError("older_than_days must be 0 or more")
    size = _batch_size(batch_size)
    deadline = None if time_budget is None else time.monotonic() + time_budget
    deleted = Deleted()
    for policy in _policies_named(tables):
        days = older_than_days if older_than_days is not None else policy.days()
        if days is None:
            deleted[policy.label] = 0
            continue
        count, complete = _delete(
            policy, cutoff=now - timedelta(days=days), batch_size=size, deadline=deadline
        )
        deleted[policy.label] = count
        if count >= VACUUM_AFTER_ROWS:
            _vacuum(policy.model)
        if not complete:
            deleted.complete = False
            logger.warning("retention: time budget spent, the rest goes at the next cleanup")
            break
    return deleted


def retention_cleanup(
    *,
    history_days: int | None = None,
    batch_size: int | None = None,
    time_budget: float | None = None,
    now: datetime | None = None,
) -> Deleted:
    """The daily cleanup: every table by its setting, except that `history_days`, when given,
    is how long task results and events are kept (the cleanup task's `days`, which schedules
    written before the settings existed still pass)."""
    now = now or timezone.now()
    started = time.monotonic()
    deleted = retention_run(
        now=now,
        tables=HISTORY_TABLES,
        older_than_days=history_days,
        batch_size=batch_size,
        time_budget=time_budget,
    )
    if not deleted.complete:
        return deleted
    others = [policy.label for policy in retention_policies() if policy.label not in HISTORY_TABLES]
    spent = time.monotonic() - started
    rest = retention_run(
        now=now,
        tables=others,
        batch_size=batch_size,
        time_budget=None if time_budget is None else max(time_budget - spent, 0.0),
    )
    deleted.update(rest)
    deleted.complete = rest.complete
    return deleted


def retention_clear(*, tables: Iterable[str], batch_size: int | None = None) -> Deleted:
    """Delete every row of the tables named, whatever its age, in batches."""
    size = _batch_size(batch_size)
    deleted = Deleted()
    for policy in _policies_named(tables):
        deleted[policy.label], _ = _delete(policy, cutoff=None, batch_size=size, deadline=None)
    return deleted


# Rows deleted from one table in one run after which PostgreSQL vacuums it at once.
VACUUM_AFTER_ROWS = 10_000


def _vacuum(model: type[Model]) -> None:
    """VACUUM (ANALYZE) `model`'s table on PostgreSQL, outside any transaction.

    Until a vacuum, the index entries of deleted rows stay and reads walk them: after a large
    cleanup, `MIN(date_done)` took 150 ms instead of 0.1 ms on 500,000 dead entries.
    Autovacuum would come only after a fifth of the table is dead, and the planner's row
    estimate (which pages show as the table's size) would lag until then. A plain VACUUM takes
    no lock that stops reads or writes.
    """
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {table}")
    logger.info("retention: vacuumed %s in %.1f s", table, time.monotonic() - started)


def _batch_size(batch_size: int | None) -> int:
    size = settings.RETENTION_BATCH_SIZE if batch_size is None else batch_size
    if size < 1:
        raise ValueError("batch_size must be 1 or more")
    # Larger batches (schedules saved when 50,000 was allowed) run as the largest allowed.
    return min(size, MAX_BATCH_SIZE)


def _delete(
    policy: RetentionPolicy,
    *,
    cutoff: datetime | None,
    batch_size: int,
    deadline: float | None,
) -> tuple[int, bool]:
    """Delete `policy`'s rows older than `cutoff` (None: all); (rows deleted, finished)."""
    rows = policy.rows(cutoff).using(router.db_for_write(policy.model))
    # Everything goes without a cutoff: walk the primary key, whatever the ages (or NULLs) are.
    key = "pk" if cutoff is None else policy.order or policy.field
    parts = [{}] if policy.partitions is None else policy.partitions(cutoff)
    deleted = 0
    for part in parts:
        count, finished = _delete_batches(
            policy, rows.filter(**part), key=key, batch_size=batch_size, deadline=deadline
        )
        deleted += count
        if not finished:
            return deleted, False
    return deleted, True


def _delete_batches(
    policy: RetentionPolicy,
    rows: QuerySet[Any],
    *,
    key: str,
    batch_size: int,
    deadline: float | None,
) -> tuple[int, bool]:
    model = policy.model
    manager = model._default_manager.using(rows.db)
    # Each batch starts where the previous one ended (keyset): a range from the edge would walk
    # again over the index entries of rows just deleted, which PostgreSQL keeps until vacuum,
    # and every batch would be slower than the one before. Newest first, down from the cutoff:
    # the entries of deleted rows then lie between the oldest rows left and the cutoff, where
    # no page looks, and not at the start of the index, where every `MIN(field)` (the oldest
    # row, the admin's first date) would walk all of them until the table is vacuumed.
    ceiling: Any = None
    deleted = 0
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            return deleted, False
        batch = rows if ceiling is None else rows.filter(**{f"{key}__lte": ceiling})
        picked = list(batch.order_by(f"-{key}").values_list("pk", key)[:batch_size])
        if not picked:
            return deleted, True
        pks = [pk for pk, _ in picked]
        # Django's delete cascades and sets NULL as the foreign keys say (and refuses a
        # PROTECT). A model others point at is read before it is deleted: its primary keys only.
        with transaction.atomic(using=rows.db):
            _, per_model = manager.filter(pk__in=pks).only("pk").delete()
        deleted += per_model.get(model._meta.label, 0)
        if policy.after_batch is not None:
            policy.after_batch(pks)
        if len(picked) < batch_size:
            return deleted, True
        ceiling = picked[-1][1]


# --- What the overview shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionRow:
    label: str
    days: int | None  # None: kept forever
    scope: str
    rows: int
    rows_estimated: bool  # True: an estimate (pg_class.reltuples, or the span of ids on SQLite)
    oldest: datetime | None
    # The soonest run of an enabled schedule of the cleanup task, and that schedule.
    next_cleanup: datetime | None
    cleanup_schedule: str | None = None
    cleanup_schedule_id: int | None = None

    @property
    def kept(self) -> str:
        """'30 days', '90 days after the tournament ended', 'forever'."""
        if self.days is None:
            return "forever"
        kept = f"{self.days} day{'' if self.days == 1 else 's'}"
        return f"{kept} {self.scope}" if self.scope else kept

    @property
    def rows_text(self) -> str:
        """'1,204', or '~2,400,000' for an estimate."""
        return f"{'~' if self.rows_estimated else ''}{self.rows:,}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.label,
            "retention_days": self.days,
            "scope": self.scope,
            "rows": self.rows,
            "rows_estimated": self.rows_estimated,
            "oldest": self.oldest.isoformat() if self.oldest else None,
            "next_cleanup": self.next_cleanup.isoformat() if self.next_cleanup else None,
            "cleanup_schedule": self.cleanup_schedule,
        }


def retention_overview(*, now: datetime | None = None) -> list[RetentionRow]:
    """Per table: its retention, rows (counted when small, else estimated), oldest row, and
    when the cleanup runs next. A few indexed reads, whatever the size of the tables."""
    cleanup, overrides = _next_cleanup(now=now)
    next_cleanup, schedule = cleanup if cleanup is not None else (None, None)
    overview = []
    for policy in retention_policies():
        days = overrides.get(policy.label, policy.days())
        rows, estimated = counted_or_estimated(policy.model, exact_up_to=EXACT_COUNT_UP_TO)
        oldest = policy.model._default_manager.aggregate(oldest=Min(policy.field))["oldest"]
        overview.append(
            RetentionRow(
                label=policy.label,
                days=days,
                scope=policy.scope_description,
                rows=rows,
                rows_estimated=estimated,
                oldest=oldest,
                next_cleanup=next_cleanup,
                cleanup_schedule=schedule.name if schedule is not None else None,
                cleanup_schedule_id=schedule.pk if schedule is not None else None,
            )
        )
    return overview


def _next_cleanup(
    *, now: datetime | None
) -> tuple[tuple[datetime, PeriodicTask] | None, dict[str, int | None]]:
    """The next run of an enabled cleanup schedule and that schedule, and the days its `days`
    parameter gives the history tables instead of their settings (none: {})."""
    schedules = (
        PeriodicTask.objects.filter(task=CLEANUP_TASK, enabled=True)
        .select_related("interval", "crontab", "solar", "clocked", "options")
        .order_by("pk")[:_CLEANUP_SCHEDULES_READ]
    )
    soonest: tuple[datetime, PeriodicTask] | None = None
    for periodic_task in schedules:
        run = schedule_next_run(periodic_task, now=now)
        if run is not None and (soonest is None or run < soonest[0]):
            soonest = (run, periodic_task)
    if soonest is None:
        return None, {}
    periodic_task = soonest[1]
    try:
        days = json.loads(periodic_task.kwargs or "{}").get("days")
    except (ValueError, AttributeError):  # kwargs written by hand in the stock admin
        days = None
    if not isinstance(days, int) or isinstance(days, bool):
        return soonest, {}
    return soonest, dict.fromkeys(HISTORY_TABLES, days)


# --- The scheduler's tables ----------------------------------------------------------------------


def _rebuild_states_of_deleted_runs(pks: Sequence[Any]) -> None:
    # A periodic task's latest run may have gone with the batch: point its state at the run
    # before it, or drop the state when none is left, so pages listing schedules keep showing
    # what the history holds.
    #
    # Read by a range of result ids, then matched here: the state table has a row per periodic
    # task and no index on result_id, and a range costs two comparisons per row where
    # `result_id IN (<the batch>)` made PostgreSQL compare each row with every id (60 ms for 5,000).
    deleted = set(pks)
    states = ScheduleState.objects.filter(result_id__gte=min(pks), result_id__lte=max(pks))
    names = [
        name
        for result_id, name in states.values_list("result_id", "periodic_task_name")
        if result_id in deleted
    ]
    if names:
        schedule_states_rebuild(names=names)


retention_register(
    RetentionPolicy(
        label=RESULTS,
        model=TaskResult,
        field="date_done",
        setting="RESULTS_RETENTION_DAYS",
        after_batch=_rebuild_states_of_deleted_runs,
    )
)
retention_register(
    RetentionPolicy(
        label=EVENTS, model=TaskEvent, field="created_at", setting="EVENTS_RETENTION_DAYS"
    )
)
retention_register(
    RetentionPolicy(
        label=AUDIT, model=AuditEntry, field="created_at", setting="AUDIT_RETENTION_DAYS"
    )
)
retention_register(
    RetentionPolicy(
        label="notification deliveries",
        model=NotificationDelivery,
        field="created_at",
        setting="ALERTS_RETENTION_DAYS",
    )
)
retention_register(
    RetentionPolicy(
        label="incidents",
        model=Incident,
        field="opened_at",
        setting="ALERTS_RETENTION_DAYS",
        scope=lambda rows, cutoff: rows.filter(resolved_at__isnull=False),
        scope_description="once resolved",
    )
)
