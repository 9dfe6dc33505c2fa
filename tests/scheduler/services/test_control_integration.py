"""An operator's controls with a real worker, a real Redis and the test database: revoking a
queued run, terminating a running one, pausing a queue (its runs wait, other queues go on, a
worker started later leaves it alone), resuming it, purging it. One worker for the module;
every test leaves every queue consumed again."""

from __future__ import annotations

import getpass
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django_celery_results.models import TaskResult

from config.celery import app
from config.queues import QUEUES
from scheduler import selectors, services
from scheduler.models import AuditEntry, QueuePause, TaskEvent
from scheduler.observability.queues import queue_depths
from tests.clients import api_client, response_json
from tests.factories import user_with
from tests.processes import RunningProcess, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TIMEOUT = 30


@pytest.fixture
def consuming_again(celery_worker: RunningProcess) -> Iterator[RunningProcess]:
    """The module's worker, consuming every queue again after the test (whatever it paused)."""
    yield celery_worker
    QueuePause.objects.all().delete()
    for queue in QUEUES:
        app.control.add_consumer(queue, destination=[celery_worker.hostname], reply=True, timeout=2)


def _state(task_id: str) -> str:
    return selectors.task_status(task_id).state


def _ends(task_id: str, state: str) -> None:
    wait_for(lambda: _state(task_id) == state, timeout=TIMEOUT, what=f"{task_id} to be {state}")


def _sleep(seconds: float, queue: str | None = None) -> str:
    return services.task_enqueue(task="scheduler.sleep", params={"seconds": seconds}, queue=queue)


def _consumed_by(hostname: str) -> set[str]:
    replies = app.control.inspect([hostname], timeout=5).active_queues() or {}
    return {queue["name"] for queue in replies.get(hostname, [])}


def _audit() -> list[tuple[str, str, str]]:
    return list(
        AuditEntry.objects.order_by("id").values_list("action", "periodic_task_name", "source")
    )


def test_a_paused_queue_waits_while_another_runs_and_a_run_revoked_there_never_runs(
    consuming_again: RunningProcess,
):
    operator = api_client(user_with("scheduler.control_workers", "scheduler.run_tasks"))

    paused = operator.post("/api/queues/default/pause/", {"note": "incident 12"}, format="json")
    waiting, revoked = _sleep(0.1), _sleep(0.1)
    other = _sleep(0.1, queue="maintenance")
    _ends(other, "SUCCESS")

    assert paused.status_code == 200, paused.content
    assert response_json(paused)["paused"] is True
    assert response_json(paused)["answered"] == [consuming_again.hostname]
    assert "default" not in _consumed_by(consuming_again.hostname)
    assert _state(waiting) == _state(revoked) == "PENDING"
    assert queue_depths()["default"] == 2
    listed = {row["name"]: row for row in response_json(operator.get("/api/queues/"))}
    assert listed["default"]["paused"] is True
    assert listed["default"]["note"] == "incident 12"
    assert listed["default"]["depth"] == 2

    revoke = operator.post(f"/api/tasks/{revoked}/revoke/", {}, format="json")
    resumed = operator.post("/api/queues/default/resume/")
    _ends(waiting, "SUCCESS")
    _ends(revoked, "REVOKED")

    assert revoke.status_code == 202, revoke.content
    assert response_json(resumed)["paused"] is False
    assert response_json(resumed)["answered"] == [consuming_again.hostname]
    assert not TaskEvent.objects.filter(task_id=revoked, type="task.started").exists()
    assert _audit() == [
        ("queue_paused", "queue:default", "api"),
        ("revoked", "scheduler.sleep", "api"),
        ("queue_resumed", "queue:default", "api"),
    ]


def test_the_cli_terminates_a_running_run(consuming_again: RunningProcess):
    running = _sleep(8, queue="maintenance")
    wait_for(
        lambda: TaskEvent.objects.filter(task_id=running, type="task.started").exists(),
        timeout=TIMEOUT,
        what="the run to start",
    )
    printed = io.StringIO()

    call_command("scheduler", "revoke", running, "--terminate", "--json", stdout=printed)
    _ends(running, "REVOKED")

    answer = json.loads(printed.getvalue())
    assert answer["status"] == "terminate requested"
    assert answer["state"] == "STARTED"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.actor_name) == (
        "terminated",
        "cli",
        getpass.getuser(),
    )
    assert TaskResult.objects.get(task_id=running).status == "REVOKED"


def test_a_worker_started_after_a_pause_leaves_the_queue_alone_until_it_is_resumed(
    consuming_again: RunningProcess, run_dir: Path
):
    call_command("scheduler", "queue", "pause", "recovery", stdout=io.StringIO())
    late = start_worker(log_dir=run_dir, queues=["recovery", "default"], concurrency=1)
    try:
        run = _sleep(0.1, queue="recovery")
        # Both workers consume default: the late one is up and taking work.
        _ends(_sleep(0.1), "SUCCESS")

        assert _consumed_by(late.hostname) == {"default"}
        assert _state(run) == "PENDING"
        assert queue_depths()["recovery"] == 1

        control = services.queue_resume(queue="recovery")
        _ends(run, "SUCCESS")

        assert sorted(control.workers) == sorted([consuming_again.hostname, late.hostname])
        assert _consumed_by(late.hostname) == {"default", "recovery"}
    finally:
        late.stop()
    assert [action for action, _, _ in _audit()] == ["queue_paused", "queue_resumed"]


def test_a_purge_needs_the_queues_name_and_says_how_many_it_removed(
    consuming_again: RunningProcess,
):
    operator = api_client(user_with("scheduler.control_workers"))
    services.queue_pause(queue="webhooks")
    runs = [_sleep(0.1, queue="webhooks") for _ in range(3)]

    missing = operator.post("/api/queues/webhooks/purge/", {}, format="json")
    wrong = operator.post("/api/queues/webhooks/purge/", {"confirm": "default"}, format="json")
    depth_after_refusals = queue_depths()["webhooks"]
    purged = operator.post("/api/queues/webhooks/purge/", {"confirm": "webhooks"}, format="json")

    assert missing.status_code == wrong.status_code == 400
    assert "confirm" in response_json(missing)
    assert "confirm" in response_json(wrong)
    assert depth_after_refusals == 3
    assert purged.status_code == 200, purged.content
    assert response_json(purged) == {"queue": "webhooks", "purged": 3}
    assert queue_depths()["webhooks"] == 0
    entry: Any = AuditEntry.objects.get(action="queue_purged")
    assert (entry.periodic_task_name, entry.changes) == ("queue:webhooks", {"messages": [3, 0]})
    services.queue_resume(queue="webhooks")
    assert all(_state(run) == "PENDING" for run in runs)
