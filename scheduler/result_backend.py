"""django-celery-results' database backend, storing a task's state in one statement.

The stock backend stores each state with `get_or_create` and then `save()`: a SELECT, then an
INSERT in a savepoint (STARTED) or an UPDATE of every column (SUCCESS), so four to five
statements per run, on the hot path of every task. Here each state is one
`INSERT ... ON CONFLICT (task_id) DO UPDATE` statement (SQLite and PostgreSQL both have it),
which also cannot race with another writer of the same task id the way get-then-insert can.

The rows are the stock backend's, column for column: the same fields are written on each state,
`date_created` is kept from the first write, `date_done` is set on every write (auto_now),
`date_started` only on STARTED (the database clock, as in the stock backend). Reads, groups,
chords and cleanup are the stock backend's. Unlike `save()` the upsert sends no
pre_save/post_save signals for TaskResult: nothing here listens to them.

Configured with CELERY_RESULT_BACKEND=scheduler.result_backend.DatabaseBackend.
"""

from __future__ import annotations

from typing import Any, cast

from celery import states
from django.db import connections, router
from django.db.models.constants import OnConflict
from django.db.models.functions import Now
from django.db.models.sql import InsertQuery
from django_celery_results.backends.database import DatabaseBackend as StockDatabaseBackend
from django_celery_results.models import TaskResult

# Written on every state, as the stock backend's `TaskResultManager.store_result` does.
_STATE_FIELDS = (
    "status",
    "result",
    "traceback",
    "meta",
    "content_encoding",
    "content_type",
    "periodic_task_name",
    "task_name",
    "task_args",
    "task_kwargs",
    "worker",
)


class DatabaseBackend(StockDatabaseBackend):
    def _store_result(
        self,
        task_id: str,
        result: Any,
        status: str,
        traceback: str | None = None,
        request: Any = None,
        using: str | None = None,
    ) -> Any:
        content_type, content_encoding, encoded = self.encode_content(result)
        meta = {
            **self._get_meta_from_request(request),
            "children": self.current_task_children(request),
        }
        _, _, encoded_meta = self.encode_content(meta)
        fields: dict[str, Any] = {
            "status": status,
            "result": encoded,
            "traceback": traceback,
            "meta": encoded_meta,
            "content_encoding": content_encoding,
            "content_type": content_type,
            **self._get_extended_properties(request, traceback),
        }
        started = status == states.STARTED
        row = TaskResult(task_id=task_id, **{name: fields[name] for name in _STATE_FIELDS})
        if started:
            cast(Any, row).date_started = Now()
        _upsert(row, started=started, using=using or router.db_for_write(TaskResult))
        return encoded


# (database alias, STARTED?) -> the statement, compiled by Django once: compiling it for every
# state cost about as much as running it.
_statements: dict[tuple[str, bool], str] = {}


def _upsert(row: TaskResult, *, started: bool, using: str) -> None:
    opts = TaskResult._meta
    fields = [field for field in opts.concrete_fields if not field.primary_key]
    connection = connections[using]
    sql = _statements.get((using, started))
    if sql is None:
        update_fields = [*_STATE_FIELDS, "date_done", *(["date_started"] if started else [])]
        # What `bulk_create(update_conflicts=True)` runs, without the transaction it opens
        # around its batches (BEGIN and COMMIT would be two more round trips).
        query = InsertQuery(
            TaskResult,
            on_conflict=OnConflict.UPDATE,
            update_fields=[opts.get_field(name) for name in update_fields],
            unique_fields=[opts.get_field("task_id")],
        )
        query.insert_values(fields, [row])
        [(sql, compiled)] = query.get_compiler(using=using).as_sql()
        params = _parameters(row, fields, connection)
        # Kept only when our parameters are the compiler's: otherwise every call compiles.
        if _same_parameters(list(compiled), params, row, fields):
            _statements[(using, started)] = sql
    else:
        params = _parameters(row, fields, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _same_parameters(
    compiled: list[Any], ours: list[Any], row: TaskResult, fields: list[Any]
) -> bool:
    # The clocks of auto_now fields moved on between the two: those only have to line up.
    in_params = [f for f in fields if not hasattr(getattr(row, f.attname), "resolve_expression")]
    return len(compiled) == len(ours) == len(in_params) and all(
        a == b or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        for a, b, field in zip(compiled, ours, in_params, strict=True)
    )


def _parameters(row: TaskResult, fields: list[Any], connection: Any) -> list[Any]:
    """The values of an INSERT of `row`, as SQLInsertCompiler prepares them."""
    values = []
    for field in fields:
        value = field.pre_save(row, add=True)  # sets date_created and date_done (auto_now)
        if hasattr(value, "resolve_expression"):
            continue  # compiled into the statement: date_started's Now()
        values.append(field.get_db_prep_save(value, connection=connection))
    return values
