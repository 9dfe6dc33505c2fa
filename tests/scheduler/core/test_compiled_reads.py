"""One-value reads compiled once: the same answers as their querysets, one query each."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_results.models import TaskResult

from scheduler.core.compiled_reads import FirstValue
from tests.factories import TaskResultFactory


def _status() -> FirstValue:
    return FirstValue(
        TaskResult,
        lambda task_id: TaskResult.objects.filter(task_id=task_id).values_list("status", flat=True),
    )


@pytest.mark.django_db
def test_it_answers_what_the_queryset_answers():
    read = _status()
    stored = TaskResultFactory(task_id=str(uuid.uuid4()), status="SUCCESS")

    assert read(stored.task_id) == "SUCCESS"
    assert read(str(uuid.uuid4())) is None
    assert read("it's; DROP TABLE x --") is None  # a value, never part of the statement


@pytest.mark.django_db
def test_it_is_compiled_once_and_runs_one_query_per_read():
    read = _status()
    read("first")
    with CaptureQueriesContext(connection) as queries:
        for task_id in ("a", "b", "c"):
            read(task_id)
    assert len(queries.captured_queries) == 3
    assert len(read._statements) == 1


@pytest.mark.django_db
def test_a_query_whose_statement_cannot_be_reused_goes_through_the_queryset_each_time():
    # Two parameters: the marker is not the statement's only one.
    read = FirstValue(
        TaskResult,
        lambda task_id: TaskResult.objects.filter(task_id=task_id, status="SUCCESS").values_list(
            "status", flat=True
        ),
    )
    stored = TaskResultFactory(task_id=str(uuid.uuid4()), status="SUCCESS")

    assert read(stored.task_id) == "SUCCESS"
    assert read._statements == {"default": None}
    assert read(str(uuid.uuid4())) is None
