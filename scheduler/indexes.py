"""Indexes on large tables, built without blocking writers, for migrations.

django-celery-results' `TaskResult` is not our model, so its indexes cannot be declared in a
`Meta`: our migrations create them by name. On PostgreSQL an index is built `CONCURRENTLY`
(writers go on while it builds, which on a table of millions of rows takes minutes); such a
migration must say `atomic = False`. SQLite has no such option and needs none: its writers wait
for the build either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TableIndex:
    name: str
    table: str
    columns: Sequence[str]
    # Text columns searched by prefix (`LIKE 'x%'`): on PostgreSQL their index entries use
    # `varchar_pattern_ops`, which serves prefixes whatever the database's collation, and still
    # equality (not `<` or `>`, which no query of ours asks of these columns).
    prefix_columns: Sequence[str] = ()

    def create(self, schema_editor: Any) -> None:
        quote = schema_editor.quote_name
        postgresql = schema_editor.connection.vendor == "postgresql"
        columns = ", ".join(
            f"{quote(column)} varchar_pattern_ops"
            if postgresql and column in self.prefix_columns
            else quote(column)
            for column in self.columns
        )
        concurrently = "CONCURRENTLY " if postgresql else ""
        if postgresql and self._invalid(schema_editor):
            # A concurrent build that was interrupted leaves an invalid index behind, which
            # `IF NOT EXISTS` would keep: build it again.
            self.drop(schema_editor)
        schema_editor.execute(
            f"CREATE INDEX {concurrently}IF NOT EXISTS {quote(self.name)} "
            f"ON {quote(self.table)} ({columns})"
        )

    def _invalid(self, schema_editor: Any) -> bool:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                [schema_editor.quote_name(self.name)],
            )
            row = cursor.fetchone()
        return bool(row and row[0])

    def drop(self, schema_editor: Any) -> None:
        concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
        schema_editor.execute(
            f"DROP INDEX {concurrently}IF EXISTS {schema_editor.quote_name(self.name)}"
        )
