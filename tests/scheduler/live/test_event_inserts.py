"""Event rows inserted in one prepared statement, as bulk_create would store them."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler.live import event_inserts as inserts
from scheduler.live.event_inserts import insert_rows
from scheduler.models import TaskEvent


def _rows(task_id: str, count: int) -> list[TaskEvent]:
    return [
        TaskEvent(
            type="task.succeeded",
            task_id=task_id,
            task_name="tests.inserts",
            state="SUCCESS",
            worker="w@h",
            duration=0.25 * n,
            message=f"run {n}",
            payload={"n": n, "nested": {"ok": True}},
            object_type="tournament",
            object_id=str(n),
            created_at=timezone.now(),
        )
        for n in range(count)
    ]


@pytest.mark.django_db
def test_it_stores_the_rows_bulk_create_would(monkeypatch):
    monkeypatch.setattr(inserts, "_statements", {})
    ours, stock = str(uuid.uuid4()), str(uuid.uuid4())

    insert_rows(_rows(ours, 5))
    insert_rows(_rows(ours, 3))  # the statement compiled above, reused
    TaskEvent.objects.bulk_create(_rows(stock, 5) + _rows(stock, 3))

    def stored(task_id: str) -> list[tuple]:
        return list(
            TaskEvent.objects.filter(task_id=task_id)
            .order_by("id")
            .values_list("type", "state", "duration", "message", "payload", "object_id")
        )

    assert stored(ours) == stored(stock)
    assert len(stored(ours)) == 8
    assert list(inserts._statements.values()) != [None]


@pytest.mark.django_db
def test_a_batch_is_one_statement_in_one_transaction():
    with CaptureQueriesContext(connection) as queries:
        insert_rows(_rows(str(uuid.uuid4()), 20))

    inserts_run = [q for q in queries.captured_queries if "INSERT" in q["sql"].upper()]
    assert len(inserts_run) == 1  # executemany is one captured query


def test_nothing_to_insert_is_nothing_to_do():
    insert_rows([])
