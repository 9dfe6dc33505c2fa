"""django-celery-results' database backend, writing a run's row once or twice, one statement each.

The stock backend stores each state with `get_or_create` and then `save()`: a SELECT, then an
INSERT in a savepoint (STARTED) or an UPDATE of every column (SUCCESS), so four to five
statements per run, on the hot path of every task. Here each write is one
`INSERT ... ON CONFLICT (task_id) DO UPDATE` statement (SQLite and PostgreSQL both have it),
compiled once per process, which also cannot race with another writer of the same task id the
way get-then-insert can. On PostgreSQL the statement is prepared once per connection and its
parameters bound by the server (`DB_PREPARED_STATEMENTS`, on by default): Django's client-side
binding quoted every value into the text in Python, and the server parsed and planned it again,
on every write. A server that loses a prepared statement (a pooler that cannot keep them) turns
preparing off in that process, and the write is made again unprepared.

In worker processes (`defer_started`), STARTED is not written at once: it waits STARTED_DELAY on
the publisher thread, and a run that ends before then is stored once, its final state and its start
time together; its STARTED row is not even built (encoded). A run that takes longer gets its
STARTED row as before, just STARTED_DELAY later (a reader sees PENDING until then, as it would see
STARTED until the end). Every write's parameters are taken from the row's values without a
TaskResult instance (`_Prepared`): on the hot path of every run, Django's per-field preparation
cost more than the statement. The rows are the stock backend's, column for column: the same fields
on each state, `date_created` kept from the first write, `date_done` set on every write (auto_now,
the worker's clock), `date_started` when the run started, from the worker's clock too (the stock
backend takes the database's). Reads, groups, chords and cleanup are the stock backend's. Unlike
`save()` the upsert sends no pre_save/post_save signals for TaskResult: nothing here listens to
them.

Configured with CELERY_RESULT_BACKEND=scheduler.result_backend.DatabaseBackend.
"""

from __future__ import annotations

import binascii
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, cast

import psycopg
from celery import states
from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    connections,
    router,
    transaction,
)
from django.db.models import CharField, DateTimeField, TextField
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend as StockDatabaseBackend
from django_celery_results.models import TaskResult
from kombu.exceptions import DecodeError

from scheduler.live.publisher import publisher
from scheduler.worker import schedule_state
from scheduler.worker.overlap import stop_reason_or_none

logger = logging.getLogger(__name__)

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
        using = using or router.db_for_write(TaskResult)
        if status == states.STARTED and _deferring:
            # Most runs end within STARTED_DELAY and never write this row: it is only built
            # (encoded) if it does get written. Its children are taken now, as they are now.
            children = self.current_task_children(request)
            if request is None:  # the current task's, read on this thread
                values = self._row_values(task_id, result, status, traceback, request, children)
                build: Callable[[], dict[str, Any]] = values.copy
            else:

                def build() -> dict[str, Any]:
                    return self._row_values(task_id, result, status, traceback, request, children)

            with _pending_lock:
                _pending[task_id] = _Started(build, timezone.now(), using)
            publisher().call_later(STARTED_DELAY, lambda: _write_pending(task_id))
            return result
        values = self._row_values(task_id, result, status, traceback, request)
        if status == states.STARTED:
            values["date_started"] = timezone.now()
        else:
            with _pending_lock:
                pending = _pending.pop(task_id, None)
            if pending is not None:
                values["date_started"] = pending.date_started
        _upsert(values, using=using)
        return result

    def _row_values(
        self,
        task_id: str,
        result: Any,
        status: str,
        traceback: str | None,
        request: Any,
        children: list[Any] | None = None,
    ) -> dict[str, Any]:
        """The columns of the row of one state, as the stock backend's `_store_result` sets
        them (attribute names; the dates are the writer's)."""
        content_type, content_encoding, encoded = self.encode_content(result)
        meta = {
            **self._get_meta_from_request(request),
            "children": self.current_task_children(request) if children is None else children,
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
        return {"task_id": task_id, **{name: fields[name] for name in _STATE_FIELDS}}

    def mark_as_revoked(
        self,
        task_id: str,
        reason: str = "",
        request: Any = None,
        store_result: bool = True,
        state: str = states.REVOKED,
    ) -> Any:
        # A run stopped by another run's overlap policy (cancel_other, terminate_other) is
        # revoked by its worker as any other; its row says which run stopped it and why.
        return super().mark_as_revoked(
            task_id,
            stop_reason_or_none(task_id) or reason,
            request=request,
            store_result=store_result,
            state=state,
        )

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        # The database restarting, a dropped connection, SQLite's lock timeout: the same write
        # on a new connection can succeed (settings: CELERY_RESULT_BACKEND_ALWAYS_RETRY).
        return isinstance(exc, OperationalError | InterfaceError)

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        """The stock backend's meta of the row, plus its `date_started`, from the same read.

        AsyncResult has no start time; callers that show one (the API) would otherwise read the
        row a second time.
        """
        try:
            row = TaskResult._default_manager.get_task(task_id)
        except (OperationalError, InterfaceError):
            _close_if_broken(router.db_for_read(TaskResult))
            raise
        fields: dict[str, Any] = dict(row.as_dict())
        meta = self.decode_content(row, fields.pop("meta", None)) or {}
        arguments = {}
        for name in ("task_args", "task_kwargs"):
            try:
                arguments[name] = self.decode_content(row, fields.get(name))
            except (DecodeError, binascii.Error):
                arguments[name] = fields.get(name)  # as the stock backend: left as stored
        fields.update(
            meta,
            result=self.decode_content(row, fields.get("result")),
            **arguments,
            args=arguments["task_args"],
            kwargs=arguments["task_kwargs"],
            date_started=getattr(row, "date_started", None),
        )
        return cast(dict[str, Any], self.meta_from_decoded(fields))


# Seconds a STARTED row waits for the run's end, to be written with it (module docstring).
STARTED_DELAY = 0.05


class _Started(NamedTuple):
    """A STARTED row not written yet: what builds it, should it be written after all."""

    build: Callable[[], dict[str, Any]]
    date_started: datetime
    using: str


# task id -> the STARTED row not written yet; a writer holds the lock while it writes one, so
# that a run's end can never be overwritten by its start.
_pending: dict[str, _Started] = {}
_pending_lock = threading.Lock()
_deferring = False


def defer_started(enabled: bool = True) -> None:
    """Let STARTED rows wait on this process's publisher thread (worker processes)."""
    global _deferring
    _deferring = enabled


def discard_started(task_id: str) -> None:
    """Forget the STARTED row of `task_id` not written yet (a copy dropped as a duplicate)."""
    with _pending_lock:
        _pending.pop(task_id, None)


def _write_pending(task_id: str) -> bool:
    """Write the STARTED row of a run still going; whether there was one (the publisher thread
    then looks after its database connection)."""
    with _pending_lock:
        pending = _pending.pop(task_id, None)
        if pending is None:
            return False
        _upsert({**pending.build(), "date_started": pending.date_started}, using=pending.using)
    return True


# A stored SUCCESS is final, as Celery's key-value backends have it: a redelivered copy of a
# run that succeeded (its worker died before the acknowledgement, or an ETA message restored
# past the visibility timeout) must not turn it back into STARTED, RETRY or FAILURE. Both
# SQLite and PostgreSQL take a WHERE on the DO UPDATE of an upsert.
# Nor may a STARTED, written before a copy's body starts, land on a run that ended otherwise;
# nor a BUFFERED, written just after the run went into the buffer, on the end of its turn (the
# running run ended at once and its turn came and went in between).
_KEEP_SUCCESS = (
    " WHERE {table}.\"status\" <> 'SUCCESS' AND NOT (EXCLUDED.\"status\" IN ('STARTED',"
    " 'BUFFERED') AND {table}.\"status\" IN ('FAILURE', 'REVOKED', 'SKIPPED'))"
)

# (database alias, with a start time?, of a periodic task?) -> the statement, compiled by Django
# once: compiling it for every write cost about as much as running it.
_statements: dict[tuple[str, bool, bool], str] = {}


def _upsert(values: dict[str, Any], *, using: str) -> None:
    """Store the row of `values` (attribute names); a run of a periodic task moves its
    `ScheduleState` on with it.

    PostgreSQL: one statement (the state's upsert reads the result's through a CTE). SQLite:
    the result's upsert returns the row it wrote, if it wrote one, and the state's follows in
    the same transaction.
    """
    connection = connections[using]
    started = values.get("date_started") is not None
    periodic = bool(values.get("periodic_task_name"))
    cte = periodic and connection.vendor == "postgresql"
    key = (using, started, periodic)
    sql = _statements.get(key)
    prepared = _prepared(using, connection)
    params = prepared.parameters(values, timezone.now())
    if sql is None:
        sql = _compiled(values, using=using, started=started, periodic=periodic, cte=cte)
        # Kept only when our parameters are the compiler's: otherwise every call compiles.
        compiled = _compiler_parameters(values, using=using)
        if _same_parameters(compiled, params, prepared.fields):
            _statements[key] = sql
        else:
            params = compiled
    try:
        if periodic and not cte:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                cursor.execute(sql, params)
                written = cursor.fetchone()
                if written is not None:
                    cursor.execute(_state_statement(using), list(written))
        else:
            _execute_prepared(connection, sql, params)
    except (OperationalError, InterfaceError):
        _close_if_broken(using)
        raise


def _execute_prepared(connection: Any, sql: str, params: list[Any]) -> None:
    """Run `sql` prepared where it may be (`_cursor`). A server that lost or never had the
    statement (a pooler that hands the session's statements to another server connection) turns
    preparing off for this database in this process, and the write is made again unprepared."""
    try:
        with _cursor(connection) as cursor:
            cursor.execute(sql, params)
    except ProgrammingError as exc:
        if getattr(exc.__cause__, "sqlstate", None) not in _PREPARED_STATEMENT_LOST:
            raise
        if connection.in_atomic_block:  # the caller's transaction failed: theirs to end
            raise
        _not_prepared.add(connection.alias)
        logger.warning(
            "database %s lost a prepared statement (%s): result writes are no longer prepared "
            "in this process; behind a pooler that cannot keep them, set "
            "DB_PREPARED_STATEMENTS=false",
            connection.alias,
            exc,
        )
        connection.close()  # psycopg's own record of what is prepared is wrong now
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


# invalid_sql_statement_name (the statement is not there), duplicate_prepared_statement.
_PREPARED_STATEMENT_LOST = frozenset({"26000", "42P05"})
# Database aliases whose result writes stopped being prepared in this process.
_not_prepared: set[str] = set()


def _cursor(connection: Any) -> Any:
    """A cursor for one statement of this module: on PostgreSQL (psycopg 3) with
    DB_PREPARED_STATEMENTS, one that binds its parameters on the server and prepares the
    statement (once per connection: psycopg keeps them), else the connection's own.

    Built as Django builds its own (`BaseDatabaseWrapper._cursor`): the health check, the
    connection and its error translation. Not while Django logs the queries (DEBUG, a test
    counting them): its log reads a query's text where a prepared execution leaves none.
    """
    if connection.queries_logged or not _prepares(connection):
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (None); a threshold no statement reaches lets
        # psycopg prepare only what asks for it, and leaves every other statement as it was.
        raw.prepare_threshold = _ONLY_WHEN_ASKED
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_PreparingCursor(raw))


def _prepares(connection: Any) -> bool:
    return bool(
        connection.vendor == "postgresql"
        and getattr(settings, "DB_PREPARED_STATEMENTS", False)
        and connection.alias not in _not_prepared
    )


class _PreparingCursor(psycopg.Cursor[Any]):
    """Binds on the server (Django's own cursors bind on the client) and prepares every
    statement: the server parses and plans it once per connection."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        return super().execute(query, params, **{**kwargs, "prepare": True})


_ONLY_WHEN_ASKED = 2**62


def _compiled(
    values: dict[str, Any], *, using: str, started: bool, periodic: bool, cte: bool
) -> str:
    opts = TaskResult._meta
    connection = connections[using]
    update_fields = [*_STATE_FIELDS, "date_done", *(["date_started"] if started else [])]
    # What `bulk_create(update_conflicts=True)` runs, without the transaction it opens around
    # its batches (BEGIN and COMMIT would be two more round trips).
    query = InsertQuery(
        TaskResult,
        on_conflict=OnConflict.UPDATE,
        update_fields=[opts.get_field(name) for name in update_fields],
        unique_fields=[opts.get_field("task_id")],
    )
    query.insert_values(_insert_fields(), [TaskResult(**values)])
    [(sql, _)] = query.get_compiler(using=using).as_sql()
    sql += _KEEP_SUCCESS.format(table=connection.ops.quote_name(opts.db_table))
    if cte:
        return schedule_state.state_upsert_cte_sql(sql, connection)
    if periodic:
        sql += schedule_state.returning_clause(connection)
    return sql


def _compiler_parameters(values: dict[str, Any], *, using: str) -> list[Any]:
    """The parameters Django's compiler gives the INSERT of `values`: what ours must equal."""
    query = InsertQuery(TaskResult)
    query.insert_values(_insert_fields(), [TaskResult(**values)])
    [(_, compiled)] = query.get_compiler(using=using).as_sql()
    return list(compiled)


def _insert_fields() -> list[Any]:
    return [field for field in TaskResult._meta.concrete_fields if not field.primary_key]


class _Prepared:
    """The INSERT's parameters from a row's values without a model instance, for one database.

    Django's path (a TaskResult, then `pre_save` and `get_db_prep_save` per field) cost more
    than the statement on this hot path. Text columns take their values as they are (what
    CharField and TextField give for a str or None), the dates go through the database's
    adapter, and anything else through the field (the check in `_upsert` makes sure that this
    is what the compiler gives).
    """

    def __init__(self, connection: Any) -> None:
        self.fields = _insert_fields()
        self._adapt_date = connection.ops.adapt_datetimefield_value
        self._connection = connection
        self._steps: list[tuple[str, str]] = []
        for field in self.fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                how = "now"
            elif isinstance(field, DateTimeField):
                how = "date"
            elif type(field) in (CharField, TextField):
                how = "text"
            else:
                how = "field"
            self._steps.append((field.attname, how))

    def parameters(self, values: dict[str, Any], now: datetime) -> list[Any]:
        params = []
        for (name, how), field in zip(self._steps, self.fields, strict=True):
            if how == "now":
                params.append(self._adapt_date(now))
                continue
            value = values.get(name)
            if how == "text" and (value is None or type(value) is str):
                params.append(value)
            elif how == "date" and (value is None or timezone.is_aware(value)):
                params.append(self._adapt_date(value))
            else:
                params.append(field.get_db_prep_save(value, connection=self._connection))
        return params


_prepared_by_alias: dict[str, _Prepared] = {}


def _prepared(using: str, connection: Any) -> _Prepared:
    prepared = _prepared_by_alias.get(using)
    if prepared is None:
        prepared = _prepared_by_alias[using] = _Prepared(connection)
    return prepared


def _state_statement(using: str) -> str:
    # The state's upsert, built once per database like the result's: SQLite runs it after
    # every write of a periodic task's run.
    key = (using, "schedule state")
    sql = _state_statements.get(key)
    if sql is None:
        sql = _state_statements[key] = schedule_state.state_upsert_sql(connections[using])
    return sql


_state_statements: dict[tuple[str, str], str] = {}


def _close_if_broken(using: str) -> None:
    # A connection the server dropped stays broken: the retry needs a new one. Not inside a
    # caller's transaction (a run in the caller), which is the caller's to end.
    connection = connections[using]
    if not connection.in_atomic_block:
        connection.close()


def _same_parameters(compiled: list[Any], ours: list[Any], fields: list[Any]) -> bool:
    # The clocks of auto_now fields moved on between the two: those only have to line up.
    return len(compiled) == len(ours) == len(fields) and all(
        a == b or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        for a, b, field in zip(compiled, ours, fields, strict=True)
    )
