"""`async def` catalog task bodies in a real worker: run on its event loop helper, their results
stored, one loop per pool process, their soft time limit applied."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django_celery_results.models import TaskResult

from config.celery import app
from tests.processes import RunningProcess, start_worker, wait_for

from .async_probe import PROBE, SLEEPER

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def worker(
    django_db_setup: None, django_db_blocker: object, run_dir: Path
) -> Iterator[RunningProcess]:
    """One pool process on the default queue, with the probe tasks."""
    running = start_worker(
        log_dir=run_dir,
        queues=["default"],
        concurrency=1,
        extra=("-I", "tests.scheduler.worker.async_probe"),
    )
    try:
        yield running
    finally:
        running.stop()


def _finished(task_id: str, worker: RunningProcess) -> TaskResult:
    def stored() -> bool:
        return TaskResult.objects.filter(
            task_id=task_id, status__in=["SUCCESS", "FAILURE"]
        ).exists()

    wait_for(stored, timeout=30, what=f"run {task_id} to finish\n{worker.log()}")
    return TaskResult.objects.get(task_id=task_id)


def _send(name: str, **kwargs: object) -> str:
    task_id = str(uuid.uuid4())
    app.send_task(name, kwargs=kwargs, task_id=task_id, queue="default")
    return task_id


def test_an_async_def_task_runs_in_the_worker_and_its_result_is_stored(worker):
    first, second = _send(PROBE, value=21), _send(PROBE, value=4)

    one, two = _finished(first, worker), _finished(second, worker)

    assert (one.status, two.status) == ("SUCCESS", "SUCCESS"), worker.log()
    a, b = json.loads(one.result), json.loads(two.result)
    assert (a["double"], b["double"]) == (42, 8)
    assert a["periodic_tasks"] >= 0
    # One pool process: the same loop, kept from one run to the next.
    assert (a["pid"], a["loop"]) == (b["pid"], b["loop"])


def test_an_async_def_task_past_its_soft_limit_fails_with_it(worker):
    run = _finished(_send(SLEEPER), worker)

    assert run.status == "FAILURE"
    assert json.loads(run.result)["exc_type"] == "SoftTimeLimitExceeded"
    # Stopped at its soft limit (1 s), not after its 30 s sleep (the wait is 30 s at most).
    assert "SoftTimeLimitExceeded" in (run.traceback or "")
