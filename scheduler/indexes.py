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
    # Column names, each optionally followed by " DESC".
    columns: Sequence[str]

    def create(self, schema_editor: Any) -> None:
        quote = schema_editor.quote_name
        columns = ", ".join(
            " ".join([quote(parts[0]), *parts[1:]]) for parts in (c.split() for c in self.columns)
        )
        concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
        schema_editor.execute(
            f"CREATE INDEX {concurrently}IF NOT EXISTS {quote(self.name)} "
            f"ON {quote(self.table)} ({columns})"
        )

    def drop(self, schema_editor: Any) -> None:
        concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
        schema_editor.execute(
            f"DROP INDEX {concurrently}IF EXISTS {schema_editor.quote_name(self.name)}"
        )
