"""Rows of a given age for the history retention tests (test_retention*.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django_celery_results.models import TaskResult

from scheduler.models import AuditEntry, TaskEvent
from tests.factories import TaskResultFactory

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def result(age: timedelta, **fields: Any) -> TaskResult:
    row = TaskResultFactory.create(**fields)
    # date_done is automatic: put the row in the past afterwards.
    TaskResult.objects.filter(pk=row.pk).update(date_done=NOW - age, date_created=NOW - age)
    return row


def event(age: timedelta) -> TaskEvent:
    return TaskEvent.objects.create(type="task.succeeded", created_at=NOW - age)


def audit(age: timedelta) -> AuditEntry:
    entry = AuditEntry.objects.create(
        periodic_task_name="nightly", action=AuditEntry.Action.UPDATED, source="cli"
    )
    AuditEntry.objects.filter(pk=entry.pk).update(created_at=NOW - age)
    return entry


def ages(model: type[Any], field: str) -> list[int]:
    """The ages, in whole days before NOW, of the rows left."""
    return sorted(round((NOW - at) / DAY) for at in model.objects.values_list(field, flat=True))
