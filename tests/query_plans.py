"""Query plans on PostgreSQL: which reads of the big history tables scan them whole."""

from __future__ import annotations

from django.db import connection

BIG_TABLES = ("django_celery_results_taskresult", "scheduler_taskevent")


def sequential_scans(queries: list[str]) -> list[str]:
    """The SELECTs of `queries` that read a big table without an index, with their plans."""
    found = []
    with connection.cursor() as cursor:
        for sql in queries:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            if not any(table in sql for table in BIG_TABLES):
                continue
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            scanned = [table for table in BIG_TABLES if f"Seq Scan on {table}" in plan]
            if scanned:
                found.append(f"{sql}\n{plan}")
    return found
