"""What the REST API's tests share: a task id nobody queued and the URL of a schedule."""

from __future__ import annotations

from django_celery_beat.models import PeriodicTask

TASK_ID = "6f1c2b9e-8a57-4c1e-9d0b-3f2a1b4c5d6e"


def schedule_url(periodic_task: PeriodicTask, action: str = "") -> str:
    return f"/api/schedules/{periodic_task.pk}/" + (f"{action}/" if action else "")
