"""Fixtures shared by the scheduler's rooms' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection


@pytest.fixture
def postgresql_planner() -> Iterator[None]:
    """A planner that shows the index it would use on a tiny test table (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's (CI runs this file on PostgreSQL too)")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        # A test table is tiny: the planner would rightly read it whole. Without sequential
        # scans it must show which index it would use, and a query no index serves still
        # shows a sequential scan.
        cursor.execute("SET enable_seqscan = off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_seqscan")
