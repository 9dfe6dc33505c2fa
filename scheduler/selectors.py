"""Reads for the dashboard and the API."""

from __future__ import annotations

from django.db.models import QuerySet
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult


def recent_task_results(*, limit: int = 25) -> QuerySet[TaskResult]:
    return TaskResult.objects.order_by("-date_created")[:limit]


def periodic_tasks_overview() -> QuerySet[PeriodicTask]:
    return PeriodicTask.objects.select_related("interval", "crontab", "clocked", "solar").order_by(
        "name"
    )
