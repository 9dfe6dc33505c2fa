"""Dead letters at production size: the dashboard's panel, the lists staff page through and the
cleanup of resolved letters read the table through its indexes (PostgreSQL's plans)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from scheduler import selectors
from scheduler.models import DeadLetter
from scheduler.services import retention_run
from tests.factories import make_dead_letter

pytestmark = pytest.mark.django_db

TABLE = DeadLetter._meta.db_table


def _scans(queries: list[str]) -> list[str]:
    """The SELECTs of `queries` that read the dead letters without an index, with their plans."""
    found = []
    with connection.cursor() as cursor:
        for sql in queries:
            if not sql.lstrip().upper().startswith("SELECT") or TABLE not in sql:
                continue
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            if f"Seq Scan on {TABLE}" in plan:
                found.append(f"{sql}\n{plan}")
    return found


def _letters() -> None:
    for status in (*DeadLetter.Status.values, DeadLetter.Status.OPEN):
        resolved = None if status == DeadLetter.Status.OPEN else datetime(2026, 1, 1, tzinfo=UTC)
        make_dead_letter(status=status, resolved_at=resolved)


def test_on_postgresql_the_panel_and_the_open_list_read_through_an_index(
    postgresql_planner: None, api_admin: APIClient
) -> None:
    _letters()

    with CaptureQueriesContext(connection) as captured:
        selectors.dead_letters_overview()
        assert api_admin.get("/api/dead-letters/?status=open").status_code == 200

    assert _scans([query["sql"] for query in captured.captured_queries]) == []


def test_on_postgresql_the_cleanup_reads_resolved_letters_through_an_index(
    postgresql_planner: None, settings
) -> None:
    settings.DEAD_LETTER_RETENTION_DAYS = 30
    _letters()

    with CaptureQueriesContext(connection) as captured:
        deleted = retention_run(now=datetime(2026, 3, 1, tzinfo=UTC), tables=["dead letters"])

    assert deleted == {"dead letters": 2}
    assert _scans([query["sql"] for query in captured.captured_queries]) == []
