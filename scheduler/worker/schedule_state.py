"""The latest run of each periodic task (`ScheduleState`): written as results are stored, and
rebuilt from the history when the history changes under it (retention, a migration).

The result backend calls `state_upsert_sql` to extend its own write: on PostgreSQL the result's
upsert and the state's are one statement (a data-modifying CTE), on SQLite two statements in one
transaction. Either way the state moves only when the result row was written (the backend's
upsert refuses to undo a SUCCESS, and a late STARTED), and only forward: to a run created after
the one it holds, or to a new state of the same run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django.db import connections, router, transaction
from django.db.models import Field
from django_celery_results.models import TaskResult

from scheduler.models import ScheduleState

# What the state copies from the result row, in the order of RETURNING and of the state's
# INSERT (periodic_task_name, task_id, result_id, status, created_at, started_at, done_at).
RESULT_COLUMNS = (
    "periodic_task_name",
    "task_id",
    "id",
    "status",
    "date_created",
    "date_started",
    "date_done",
)
STATE_COLUMNS = (
    "periodic_task_name",
    "task_id",
    "result_id",
    "status",
    "created_at",
    "started_at",
    "done_at",
)


def _conflict_clause(quote: Any, *, forward_only: bool = True) -> str:
    table = quote(ScheduleState._meta.db_table)
    updates = ", ".join(
        f"{quote(column)} = EXCLUDED.{quote(column)}" for column in STATE_COLUMNS[1:]
    )
    if not forward_only:
        return f" ON CONFLICT ({quote('periodic_task_name')}) DO UPDATE SET {updates}"
    # Forward only: the same run's new state, or a run created later (ties by result id).
    created, result = quote("created_at"), quote("result_id")
    return (
        f" ON CONFLICT ({quote('periodic_task_name')}) DO UPDATE SET {updates}"
        f" WHERE {table}.{quote('task_id')} = EXCLUDED.{quote('task_id')}"
        f" OR {table}.{created} < EXCLUDED.{created}"
        f" OR ({table}.{created} = EXCLUDED.{created} AND {table}.{result} < EXCLUDED.{result})"
    )


def returning_clause(connection: Any) -> str:
    quote = connection.ops.quote_name
    return " RETURNING " + ", ".join(quote(column) for column in RESULT_COLUMNS)


def state_upsert_sql(connection: Any, *, forward_only: bool = True) -> str:
    """The state's upsert of one run, its seven values as parameters (`STATE_COLUMNS`);
    `forward_only=False` also moves it back (a rebuild after the latest run was deleted)."""
    quote = connection.ops.quote_name
    table = quote(ScheduleState._meta.db_table)
    columns = ", ".join(quote(column) for column in STATE_COLUMNS)
    placeholders = ", ".join(["%s"] * len(STATE_COLUMNS))
    # Identifiers quoted by the database's own quoting, values as parameters.
    insert = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608
    return insert + _conflict_clause(quote, forward_only=forward_only)


def state_upsert_cte_sql(result_upsert: str, connection: Any) -> str:
    """PostgreSQL: the result's upsert and the state's as one statement."""
    quote = connection.ops.quote_name
    table = quote(ScheduleState._meta.db_table)
    columns = ", ".join(quote(column) for column in STATE_COLUMNS)
    selected = ", ".join(quote(column) for column in RESULT_COLUMNS)
    name = quote("periodic_task_name")
    # Identifiers quoted by the database's own quoting, values as parameters.
    insert = (
        f"WITH written AS ({result_upsert}{returning_clause(connection)}) "  # noqa: S608
        f"INSERT INTO {table} ({columns}) SELECT {selected} FROM written "
        f"WHERE {name} IS NOT NULL AND {name} <> ''"
    )
    return insert + _conflict_clause(quote)


def schedule_states_rebuild(*, names: Iterable[str] | None = None) -> int:
    """Set the state of each periodic task named (default: every name in the history) to its
    latest stored run, and drop the state of a name with no run left; how many rows changed.

    One indexed read per name: for retention, which rebuilds the few names whose latest run it
    deleted, and for loading a history written without the result backend.
    """
    using = router.db_for_write(ScheduleState)
    if names is None:
        wanted: set[str] = set(
            TaskResult.objects.using(using)  # type: ignore[arg-type]
            .exclude(periodic_task_name__isnull=True)
            .exclude(periodic_task_name="")
            .values_list("periodic_task_name", flat=True)
            .distinct()
            .order_by()
        )
        wanted |= set(
            ScheduleState.objects.using(using).values_list("periodic_task_name", flat=True)
        )
    else:
        wanted = {name for name in names if name}
    changed = 0
    sql = state_upsert_sql(connections[using], forward_only=False)
    for name in sorted(wanted):
        with transaction.atomic(using=using):
            # Held until the end: a run stored meanwhile moves the state on after this rebuild,
            # never under it.
            locked = ScheduleState.objects.using(using).select_for_update()
            list(locked.filter(periodic_task_name=name).values_list("pk", flat=True))
            latest = (
                TaskResult.objects.using(using)
                .filter(periodic_task_name=name)
                .order_by("-date_created", "-id")
                .values_list(*RESULT_COLUMNS)
                .first()
            )
            if latest is None:
                states = ScheduleState.objects.using(using).filter(periodic_task_name=name)
                changed += states.delete()[0]
                continue
            with connections[using].cursor() as cursor:
                cursor.execute(sql, _state_parameters(latest, connections[using]))
            changed += 1
    return changed


def _state_parameters(values: Iterable[Any], connection: Any) -> list[Any]:
    # Values read through the ORM, prepared as the ORM would write them. A raw cursor would
    # hand SQLite's driver aware datetimes, stored as text ending in "+00:00" where Django and
    # the result backend store none: the forward-only rule compares that text, and a run created
    # in the same microsecond would then never be "equal" to it (nor its tie broken by id).
    fields = [cast(Field[Any, Any], ScheduleState._meta.get_field(c)) for c in STATE_COLUMNS]
    return [
        field.get_db_prep_save(value, connection=connection)
        for field, value in zip(fields, values, strict=True)
    ]
