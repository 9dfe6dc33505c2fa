"""`manage.py scheduler run` queues a run now and, with `--wait`, waits for its result (a stand-in
worker stores it); `scheduler run` and `scheduler test` against a real worker last, as the worker
is module-scoped and consumes every queue.
"""

from __future__ import annotations

import json
import time

import pytest
from django.core.management.base import CommandError
from django_celery_results.models import TaskResult

from config.celery import app
from scheduler.management.commands import scheduler as scheduler_command
from scheduler.models import AuditEntry, Source
from scheduler.worker.task_base import SKIPPED
from tests.scheduler.cli.helpers import create, scheduler, scheduler_json

# --- run, and run --wait -------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_queues_a_run_now_and_prints_the_task_id():
    create("job")

    output = scheduler("run", "job")

    entry = AuditEntry.objects.get(periodic_task_name="job", action="run_now")
    task_id = entry.changes["task_id"][1]
    assert entry.source == Source.CLI
    assert f"as task {task_id}." in output


def a_worker_that(store):
    """A stand-in worker: on the first poll it stores the result of the run just queued."""

    def sleep(seconds: float) -> None:
        entry = AuditEntry.objects.filter(action="run_now").latest("id")
        task_id = entry.changes["task_id"][1]
        if not TaskResult.objects.filter(task_id=task_id).exists():
            store(task_id)

    command = scheduler_command.Command()
    command.sleep = sleep
    return command


@pytest.mark.django_db
def test_it_waits_for_a_run_and_prints_its_result():
    create("job")
    command = a_worker_that(lambda task_id: app.backend.mark_as_done(task_id, {"pong": True}))

    output = scheduler("run", "job", "--wait", "--timeout", "5", command=command)

    assert "SUCCESS in" in output
    assert json.loads(output[output.index("{") :]) == {"pong": True}


RUN_WAIT_FAILURES = [
    (lambda task_id: app.backend.mark_as_failure(task_id, ValueError("boom")), "FAILURE"),
    (lambda task_id: app.backend.mark_as_revoked(task_id, "terminated"), "REVOKED"),
    (
        lambda task_id: app.backend.store_result(
            task_id, {"skipped": True, "reason": "skipped: the previous run is running"}, SKIPPED
        ),
        "skipped: the previous run is running",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("store", "message"), RUN_WAIT_FAILURES)
def test_it_exits_1_when_the_run_it_waits_for_does_not_succeed(store, message):
    create("job")

    with pytest.raises(CommandError) as error:
        scheduler("run", "job", "--wait", "--timeout", "5", command=a_worker_that(store))

    assert message in str(error.value)
    assert error.value.returncode == 1


@pytest.mark.django_db
def test_it_times_out_waiting_when_no_worker_answers():
    # In a test transaction the message is never sent (on_commit), so nothing will answer.
    create("job")

    started = time.monotonic()
    with pytest.raises(CommandError, match=r"timed out after 0.3 s waiting for task"):
        scheduler("run", "job", "--wait", "--timeout", "0.3")
    with pytest.raises(CommandError, match=r"timed out after 0.3 s"):
        scheduler("test", "--timeout", "0.3")

    assert time.monotonic() - started < 5


# --- with a real worker (last: the worker is module-scoped and consumes every queue) -------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_runs_now_on_a_real_worker_and_finds_it_in_history(celery_worker):
    create("ping_now", "every 1 hour")

    output = scheduler("run", "ping_now", "--wait", "--timeout", "30")
    history = scheduler_json("history", "--periodic-task", "ping_now", "--format", "json")

    assert "SUCCESS in" in output
    assert f"on {celery_worker.hostname}" in output
    assert '"pong": true' in output
    assert [row["status"] for row in history] == ["SUCCESS"]
    assert history[0]["worker"] == celery_worker.hostname


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_round_trips_a_ping_through_a_real_worker(celery_worker):
    output = scheduler("test", "--timeout", "30")

    assert output.startswith(f"pong from {celery_worker.hostname} in ")
    assert " ms (task " in output
