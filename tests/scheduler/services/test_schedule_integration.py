"""The whole pipe with real processes: CLI -> database -> beat -> Redis -> worker -> history."""

from __future__ import annotations

import itertools
import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django_celery_results.models import TaskResult

from scheduler.models import TaskEvent
from scheduler.worker.task_base import SKIPPED
from tests.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _history(*args: str) -> list[dict]:
    out = StringIO()
    call_command("scheduler", "history", "--format", "json", *args, stdout=out)
    rows: list[dict] = json.loads(out.getvalue())
    return rows


def test_it_runs_a_schedule_created_through_the_cli_every_second(celery_worker, celery_beat):
    call_command(
        "scheduler",
        "create",
        "heartbeat",
        "every 1 second",
        "--task",
        "scheduler.ping",
        stdout=StringIO(),
    )

    wait_for(
        lambda: (
            TaskResult.objects.filter(periodic_task_name="heartbeat", status="SUCCESS").count() >= 3
        ),
        timeout=45,
        what=f"three runs of 'heartbeat'\nbeat log:\n{celery_beat.log()}",
    )

    rows = _history("--periodic-task", "heartbeat")
    assert len(rows) >= 3
    assert {row["status"] for row in rows} == {"SUCCESS"}
    assert {row["task_name"] for row in rows} == {"scheduler.ping"}
    assert {row["worker"] for row in rows} == {celery_worker.hostname}
    started = TaskEvent.objects.filter(type="task.started", periodic_task_name="heartbeat")
    succeeded = TaskEvent.objects.filter(type="task.succeeded", periodic_task_name="heartbeat")
    assert started.exists()
    assert succeeded.exclude(duration=None).exists()


def test_it_skips_runs_that_would_overlap_a_slow_run(celery_worker, celery_beat):
    call_command(
        "scheduler",
        "create",
        "slow",
        "every 1 second",
        "--task",
        "scheduler.sleep",
        "--params",
        '{"seconds": 3}',
        "--overlap",
        "skip",
        stdout=StringIO(),
    )

    def runs() -> list[Any]:
        rows = TaskResult.objects.filter(periodic_task_name="slow").order_by("date_created")
        return list(rows.values("status", "date_created", "date_done"))

    wait_for(
        lambda: {r["status"] for r in runs()} >= {"SUCCESS", SKIPPED},
        timeout=60,
        what=f"a finished and a skipped run of 'slow'\nworker log:\n{celery_worker.log()}",
    )

    finished = [r for r in runs() if r["status"] == "SUCCESS"]
    for earlier, later in itertools.pairwise(finished):
        assert earlier["date_done"] <= later["date_created"], "two runs of 'slow' overlapped"
    assert TaskEvent.objects.filter(type="task.skipped", periodic_task_name="slow").exists()
    assert _history("--periodic-task", "slow", "--status", "skipped")
