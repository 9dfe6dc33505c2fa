"""`manage.py scheduler revoke ID [--terminate]` and `scheduler queue list | pause | resume |
purge NAME`: each audited as the command line's (source cli, the OS user); every refusal one
line with exit code 1, and nothing changed: no broadcast, no purge, no row, no audit entry.
(With a real worker: tests/scheduler/services/test_control_integration.py.)"""

from __future__ import annotations

import getpass
from typing import Any

import pytest
from django.core.management.base import CommandError
from django.utils import timezone

from config.celery import app
from scheduler.models import AuditEntry, QueuePause, TaskEvent
from scheduler.services import queues as queue_services
from tests.processes import child_env, run_manage
from tests.scheduler.cli.helpers import scheduler, scheduler_json, stored_result

pytestmark = pytest.mark.django_db


@pytest.fixture
def control(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The broadcasts and purges the verbs sent, none reaching a broker."""
    sent: list[tuple[str, Any]] = []

    def recorder(command: str, answer: Any) -> Any:
        def record(first: str, **options: Any) -> Any:
            sent.append((command, first))
            return answer

        return record

    for command in ("revoke", "cancel_consumer", "add_consumer"):
        monkeypatch.setattr(app.control, command, recorder(command, []))
    monkeypatch.setattr(queue_services, "queue_messages_purge", recorder("purge", 4))
    return sent


def _queued(task_id: str = "run-1") -> str:
    TaskEvent.objects.create(
        type="task.queued",
        task_id=task_id,
        task_name="scheduler.sleep",
        periodic_task_name="nightly sleep",
        state="PENDING",
        created_at=timezone.now(),
    )
    return task_id


def test_revoke_drops_a_queued_run_audited_as_the_os_user(control):
    task_id = _queued()

    said = scheduler("revoke", task_id)
    answer = scheduler_json("revoke", task_id, "--terminate", "--json")

    assert said.strip() == f"Asked the workers to drop task {task_id} (nightly sleep, pending)."
    assert answer == {
        "task_id": task_id,
        "status": "terminate requested",
        "state": "PENDING",
        "task_name": "scheduler.sleep",
        "periodic_task_name": "nightly sleep",
    }
    assert control == [("revoke", task_id), ("revoke", task_id)]
    entries = AuditEntry.objects.order_by("id")
    assert [(e.action, e.periodic_task_name, e.source, e.actor_name) for e in entries] == [
        ("revoked", "nightly sleep", "cli", getpass.getuser()),
        ("terminated", "nightly sleep", "cli", getpass.getuser()),
    ]
    event = TaskEvent.objects.filter(type="task.revoked").latest("id")
    assert (event.state, event.periodic_task_name) == ("REVOKED", "nightly sleep")


def test_queue_pause_list_resume_and_purge(control):
    paused = scheduler_json("queue", "pause", "webhooks", "--note", "partner down", "--json")
    again = scheduler("queue", "pause", "webhooks")
    listed = {row["name"]: row for row in scheduler_json("queue", "list", "--json")}
    table = scheduler("queue", "list", "--tz", "UTC")
    status = scheduler_json("status", "--json")
    resumed = scheduler("queue", "resume", "webhooks")
    purged = scheduler("queue", "purge", "webhooks", "--confirm", "webhooks")

    assert paused == {"queue": "webhooks", "paused": True, "changed": True, "workers": []}
    assert again.strip() == "Queue webhooks was paused already: 0 workers confirmed again."
    assert listed["webhooks"]["paused"] is True
    assert listed["webhooks"]["paused_by"] == getpass.getuser()
    assert listed["webhooks"]["note"] == "partner down"
    assert listed["default"]["paused"] is False
    assert "paused" in next(line for line in table.splitlines() if line.startswith("webhooks"))
    assert status["paused_queues"]["webhooks"]["note"] == "partner down"
    assert resumed.strip() == "Resumed queue webhooks: 0 workers confirmed."
    assert purged.strip() == "Purged queue webhooks: 4 messages removed."
    assert ("cancel_consumer", "webhooks") in control
    assert ("purge", "webhooks") in control
    assert not QueuePause.objects.exists()
    entries = AuditEntry.objects.order_by("id")
    assert [(e.action, e.periodic_task_name, e.source) for e in entries] == [
        ("queue_paused", "queue:webhooks", "cli"),
        ("queue_resumed", "queue:webhooks", "cli"),
        ("queue_purged", "queue:webhooks", "cli"),
    ]
    assert {e.actor_name for e in entries} == {getpass.getuser()}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("revoke", "nobody-queued-this"), "no task with id 'nobody-queued-this'"),
        (("revoke", "run-done"), "has finished already (SUCCESS)"),
        (("revoke", "run-running"), "terminate: task run-running is running"),
        (("queue", "pause", "nope"), "no queue named 'nope' (queues: default, agents"),
        (("queue", "resume", "nope"), "no queue named 'nope'"),
        (("queue", "purge", "nope", "--confirm", "nope"), "no queue named 'nope'"),
        (("queue", "purge", "default"), "without --confirm default"),
        (("queue", "purge", "default", "--confirm", "webhooks"), "confirm: type the queue's name"),
        (("queue", "pause", "default", "--note", "x" * 501), "note: at most 500 characters"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(control, argv, message):
    stored_result(task_id="run-done")
    stored_result(task_id="run-running", status="STARTED")

    with pytest.raises(CommandError) as error:
        scheduler(*argv)

    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert control == []
    assert not QueuePause.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_from_the_shell_a_refusal_is_one_line_and_exit_code_1():
    purge = run_manage("scheduler", "queue", "purge", "default", env=child_env())
    unknown = run_manage("scheduler", "queue", "pause", "nope", env=child_env())

    assert (purge.returncode, unknown.returncode) == (1, 1)
    assert purge.stderr.strip().startswith("CommandError: refusing to purge queue default")
    assert unknown.stderr.strip().startswith("CommandError: no queue named 'nope'")
    assert not QueuePause.objects.exists()
    assert not AuditEntry.objects.exists()
