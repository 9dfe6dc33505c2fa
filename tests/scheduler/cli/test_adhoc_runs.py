"""`manage.py scheduler retry ID` and `run-task TASK --params JSON`: a stored run queued again,
and a catalog task run now without a schedule, through the services the API uses (audited as
`retried` and `task_run`); bad input exits 1 and queues nothing. One run waited for on a real
worker, last (the worker is module-scoped).
"""

from __future__ import annotations

import json

import pytest
from celery import states
from django.core.management.base import CommandError
from django_celery_results.models import TaskResult

from scheduler.models import AuditEntry, Source
from tests.scheduler.cli.helpers import create, scheduler, scheduler_json, stored_result

# --- retry ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retry_queues_a_failed_run_again_and_audits_it():
    create("nightly")
    failed = stored_result(
        status=states.FAILURE,
        task_name="scheduler.cleanup_results",
        periodic_task_name="nightly",
        task_id="failed-1",
    )

    output = scheduler("retry", failed.task_id)

    entry = AuditEntry.objects.get(action=AuditEntry.Action.RETRIED)
    old, new = entry.changes["task_id"]
    assert old == "failed-1"
    assert output.strip() == (
        f"Queued scheduler.cleanup_results of 'nightly' again as task {new} "
        "(retry of failed-1, FAILURE)."
    )
    assert (entry.periodic_task_name, entry.source) == ("nightly", Source.CLI)
    assert entry.periodic_task is not None


@pytest.mark.django_db
def test_retry_of_an_unknown_id_exits_1():
    with pytest.raises(CommandError, match="no stored result for task nope"):
        scheduler("retry", "nope")

    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_retry_refuses_a_run_the_catalog_no_longer_accepts_and_queues_nothing():
    stored_result(status=states.FAILURE, task_id="stale-1")
    TaskResult.objects.filter(task_id="stale-1").update(task_kwargs="\"{'token': 'x'}\"")

    with pytest.raises(CommandError, match=r"params: invalid parameters for scheduler\.ping"):
        scheduler("retry", "stale-1")

    assert not AuditEntry.objects.exists()


# --- run-task ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_run_task_queues_a_catalog_task_with_its_parameters_and_audits_it():
    output = scheduler(
        "run-task", "scheduler.cleanup_results", "--params", '{"days": 5}', "--queue", "default"
    )

    entry = AuditEntry.objects.get(action=AuditEntry.Action.TASK_RUN)
    task_id = entry.changes["task_id"][1]
    assert output.strip() == f"Queued scheduler.cleanup_results on queue default as task {task_id}."
    assert entry.periodic_task_name == "scheduler.cleanup_results"
    assert entry.changes["params"][1]["days"] == 5
    assert entry.changes["queue"] == [None, "default"]


@pytest.mark.django_db
def test_run_task_uses_the_tasks_own_queue_and_no_parameters_by_default():
    queued = scheduler_json("run-task", "scheduler.ping", "--json")

    assert queued["task"] == "scheduler.ping"
    assert queued["queue"] == "default"
    assert AuditEntry.objects.get(action="task_run").changes["task_id"][1] == queued["task_id"]


RUN_TASK_REFUSALS = [
    (["scheduler.nope"], "TASK: unknown task 'scheduler.nope'"),
    (["scheduler.cleanup_results", "--params", '{"days": "a week"}'], "--params: invalid"),
    (["scheduler.cleanup_results", "--params", '{"weeks": 1}'], "--params:"),
    (["scheduler.ping", "--params", "{oops"], "--params:"),
    (["scheduler.ping", "--queue", "nowhere"], "--queue: unknown queue 'nowhere'"),
    (["scheduler.ping", "--wait", "0"], "--wait must be more than 0 seconds"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("arguments", "message"), RUN_TASK_REFUSALS)
def test_run_task_bad_input_exits_1_and_queues_nothing(arguments, message):
    with pytest.raises(CommandError) as error:
        scheduler("run-task", *arguments)

    assert message in str(error.value)
    assert error.value.returncode == 1
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_run_task_wait_times_out_when_no_worker_answers():
    # In a test transaction the message is never sent (on_commit): nothing answers.
    with pytest.raises(CommandError, match=r"timed out after 0.2 s waiting for task"):
        scheduler("run-task", "scheduler.ping", "--wait", "0.2")


# --- with a real worker (last: the worker is module-scoped) --------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_run_task_waits_for_its_result_on_a_real_worker(celery_worker):
    document = scheduler_json("run-task", "scheduler.ping", "--wait", "30", "--json")

    assert document["state"] == "SUCCESS"
    assert document["worker"] == celery_worker.hostname
    assert document["result"]["pong"] is True
    history = json.loads(scheduler("history", "--json", "--task-name", "scheduler.ping"))
    assert [row["task_id"] for row in history] == [document["task_id"]]
