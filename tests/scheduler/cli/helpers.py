"""What the tests of `manage.py scheduler` share: the command called in-process, a periodic task
created through it, and a stored result as the results backend writes one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

from celery import states
from django.core.management import call_command
from django_celery_results.models import TaskResult

from scheduler.management.commands import scheduler as scheduler_command

NOW = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)  # a Wednesday


def scheduler(*args: str, command: scheduler_command.Command | None = None) -> str:
    stdout, stderr = StringIO(), StringIO()
    call_command(command or "scheduler", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue()


def scheduler_json(*args: str) -> Any:
    return json.loads(scheduler(*args))  # the whole output is one document


def create(name: str, schedule: str = "0 9 * * *", *extra: str) -> str:
    return scheduler("create", name, schedule, "--task", "scheduler.ping", *extra)


def stored_result(
    *,
    status: str = states.SUCCESS,
    task_name: str = "scheduler.ping",
    periodic_task_name: str | None = None,
    done: datetime | None = None,
    task_id: str | None = None,
    result: str = '{"pong": true}',
    traceback: str | None = None,
) -> TaskResult:
    row = TaskResult.objects.create(
        task_id=task_id or f"id-{TaskResult.objects.count() + 1}",
        task_name=task_name,
        periodic_task_name=periodic_task_name,
        status=status,
        worker="w1@host",
        result=result,
        traceback=traceback,
        # As the results backend stores them: the message's argsrepr/kwargsrepr, as JSON strings.
        task_args='"()"',
        task_kwargs="\"{'days': 3}\"",
        content_type="application/json",
        content_encoding="utf-8",
        date_started=(done or NOW) - timedelta(seconds=2),
    )
    if done is not None:  # date_done is auto_now: set it after the insert
        TaskResult.objects.filter(pk=row.pk).update(date_done=done)
        row.refresh_from_db()
    return row
