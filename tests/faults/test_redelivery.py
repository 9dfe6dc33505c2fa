"""Faults 4 and 5: the broker delivers a message again.

4. A countdown longer than the visibility timeout: Redis restores the message while the worker
   still holds it, every visibility timeout, so several copies reach their ETA (kombu #337).
   Promise: the run executes once.
5. A copy of a run that succeeded is delivered again (its worker died before acknowledging).
   Promise: the stored SUCCESS stays, and the run's body does not execute again.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Count
from django_celery_results.models import TaskResult

from scheduler.core.redis_connection import get_redis
from scheduler.models import TaskEvent
from scheduler.system.tasks import ping
from tests.faults.conftest import publish, succeeded
from tests.processes import start_worker, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RUNS = 10
COUNTDOWN = 25  # seconds; restored every 10 s (the sweep) once past the 2 s timeout


def _events(task_ids: list[str], type: str) -> dict[str, int]:
    rows = (
        TaskEvent.objects.filter(task_id__in=task_ids, type=type)
        .values("task_id")
        .annotate(n=Count("id"))
    )
    return {row["task_id"]: row["n"] for row in rows}


def test_a_countdown_longer_than_the_visibility_timeout_executes_once(run_dir, fault_report):
    worker = start_worker(
        log_dir=run_dir,
        queues=["default"],
        concurrency=2,
        env={"CELERY_VISIBILITY_TIMEOUT": "2"},
    )
    try:
        task_ids = publish(ping, [{} for _ in range(RUNS)], countdown=COUNTDOWN)
        wait_for(
            lambda: succeeded(task_ids) == RUNS,
            timeout=COUNTDOWN + 30,
            interval=0.5,
            what="the runs to succeed",
        )
        # The other copies reach the same ETA: give them time to be dropped, and their events
        # time to be written.
        wait_for(
            lambda: (
                sum(_events(task_ids, "task.started").values())
                == sum(_events(task_ids, "task.duplicate").values()) + RUNS
            ),
            timeout=15,
            what="every copy to be accounted for",
        )
    finally:
        worker.stop()

    deliveries = _events(task_ids, "task.started")
    executions = _events(task_ids, "task.succeeded")
    dropped = _events(task_ids, "task.duplicate")
    fault_report.record(
        "4 ETA longer than the visibility timeout",
        runs=RUNS,
        countdown_s=COUNTDOWN,
        visibility_timeout_s=2,
        copies_delivered=sum(deliveries.values()),
        copies_dropped=sum(dropped.values()),
        runs_executed_more_than_once=sum(1 for n in executions.values() if n > 1),
    )
    # The fault happened: the broker handed copies out (else this test proves nothing).
    assert sum(deliveries.values()) > RUNS, f"no run was delivered twice: {deliveries}"
    assert executions == dict.fromkeys(task_ids, 1)
    assert set(
        TaskResult.objects.filter(task_id__in=task_ids).values_list("status", flat=True)
    ) == {"SUCCESS"}


def _queue_key(queue: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}{queue}"


def test_a_redelivered_copy_never_regresses_a_stored_success(run_dir, fault_report):
    redis: Any = get_redis()
    [task_id] = publish(ping, [{}])
    # The message as the broker holds it, before any worker takes it.
    raw = next(
        item for item in redis.lrange(_queue_key("default"), 0, -1) if task_id in item.decode()
    )
    worker = start_worker(log_dir=run_dir, queues=["default"], concurrency=2)
    try:
        wait_for(lambda: succeeded([task_id]) == 1, timeout=30, what="the run to succeed")
        first = TaskResult.objects.get(task_id=task_id)

        # What kombu does when it restores a message a dead worker held: back on the queue,
        # marked redelivered.
        copy = json.loads(raw)
        copy["headers"]["redelivered"] = True
        copy["properties"]["delivery_info"]["redelivered"] = True
        for _ in range(3):
            redis.lpush(_queue_key("default"), json.dumps(copy))
        wait_for(
            lambda: _events([task_id], "task.duplicate").get(task_id, 0) == 3,
            timeout=30,
            what="the three copies to be dropped",
        )
        time.sleep(0.3)  # a STARTED row the copies would write waits 50 ms (result_backend)
    finally:
        worker.stop()

    after = TaskResult.objects.get(task_id=task_id)
    executions = _events([task_id], "task.succeeded").get(task_id, 0)
    fault_report.record(
        "5 redelivery after SUCCESS",
        copies_delivered=3,
        state_after=after.status,
        result_rewritten=int(after.date_done != first.date_done),
        executions=executions,
    )
    assert after.status == "SUCCESS"
    assert after.result == first.result
    assert after.date_done == first.date_done
    assert executions == 1


def test_a_periodic_run_published_again_under_its_id_runs_once(run_dir, fault_report):
    """What a beat leader killed between publishing and recording leads to
    (scheduler/beat/scheduler.py): the next leader publishes the same run, under the same id, a few
    seconds later."""
    task_id = str(uuid.uuid4())
    headers = {"periodic_task_name": "republished"}
    worker = start_worker(log_dir=run_dir, queues=["default"], concurrency=2)
    try:
        ping.apply_async(task_id=task_id, headers=headers)
        wait_for(lambda: succeeded([task_id]) == 1, timeout=30, what="the run to succeed")
        ping.apply_async(task_id=task_id, headers=headers)  # the new leader's publish
        wait_for(
            lambda: _events([task_id], "task.duplicate").get(task_id, 0) == 1,
            timeout=30,
            what="the second publish to be dropped",
        )
    finally:
        worker.stop()

    executions = _events([task_id], "task.succeeded").get(task_id, 0)
    fault_report.record("3b periodic run published twice", publishes=2, executions=executions)
    assert executions == 1
