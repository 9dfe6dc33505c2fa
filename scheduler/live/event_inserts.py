"""Many rows of one model inserted with one prepared statement, for the event log's batches.

`bulk_create` compiles one INSERT holding every row's placeholders: for the publisher's batches
of event rows (a hundred rows of twelve columns, five times a second in a busy worker) compiling
cost more than inserting. Here Django compiles the single-row INSERT once per model and
database. On SQLite the rows go through the driver's `executemany`, which runs the one prepared
statement per row. On PostgreSQL they go as one multi-row INSERT, its VALUES groups repeated
from the compiled one (chunks of what `bulk_batch_size` allows): one statement for the server
to parse and plan per batch instead of one per row, which on a busy worker host was CPU taken
from the workers. Rows get no primary key back, and no signals are sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Model
from django.db.models.sql import InsertQuery

# (model label, database alias) -> the single-row INSERT, or None when it cannot be reused.
_statements: dict[tuple[str, str], str | None] = {}


def insert_rows(rows: Sequence[Model]) -> None:
    """INSERT `rows` (all of one model, without primary keys) in one `executemany`."""
    if not rows:
        return
    model = type(rows[0])
    using = router.db_for_write(model)
    connection = connections[using]
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    key = (model._meta.label, using)
    if key not in _statements:
        query = InsertQuery(model)
        query.insert_values(fields, [rows[0]])
        [(sql, compiled)] = query.get_compiler(using=using).as_sql()
        # Reused only when our parameters are the compiler's (no field with a placeholder of
        # its own, no expression): otherwise bulk_create, as before.
        ours = _parameters(rows[0], fields, connection)
        reusable = len(compiled) == len(ours) and all(map(_same, compiled, ours))
        _statements[key] = sql if reusable else None
    sql = _statements[key]
    if sql is None:
        model._default_manager.db_manager(using).bulk_create(list(rows))
        return
    params = [_parameters(row, fields, connection) for row in rows]
    # One transaction: in autocommit every row would be one.
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if connection.vendor != "postgresql" or len(params) == 1:
            cursor.executemany(sql, params)
            return
        head, _, group = sql.rpartition(" VALUES ")
        size = max(1, connection.ops.bulk_batch_size(fields, rows))
        for start in range(0, len(params), size):
            chunk = params[start : start + size]
            # Our own statement's placeholder group, repeated: no value goes into the text.
            statement = f"{head} VALUES {', '.join([group] * len(chunk))}"
            cursor.execute(statement, [value for row in chunk for value in row])


def _same(a: Any, b: Any) -> bool:
    # psycopg's Json/Jsonb wrappers compare by identity: compare what they wrap.
    return bool(a == b) or (type(a) is type(b) and hasattr(a, "obj") and a.obj == b.obj)


def _parameters(row: Model, fields: list[Any], connection: Any) -> list[Any]:
    return [
        field.get_db_prep_save(field.pre_save(row, add=True), connection=connection)
        for field in fields
    ]
