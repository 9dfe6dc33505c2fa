"""`/api/queues/`: listed with their pauses to staff; paused, resumed and purged only with
`scheduler.control_workers` (403 JSON otherwise, nothing changed); an unknown queue is a 404
naming ours; each change audited as the caller's, from the API or from the dashboard's buttons.
(With a real worker: tests/scheduler/services/test_control_integration.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from config.celery import app
from config.queues import QUEUES
from scheduler.models import AuditEntry, QueuePause, TaskEvent
from scheduler.services import queues as queue_services
from tests.clients import api_client, response_json
from tests.factories import user_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def control(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The broadcasts and purges the API sent, none reaching a broker."""
    sent: list[tuple[str, Any]] = []

    def recorder(command: str, answer: Any) -> Any:
        def record(queue: str, **options: Any) -> Any:
            sent.append((command, queue))
            return answer

        return record

    for command in ("cancel_consumer", "add_consumer"):
        monkeypatch.setattr(app.control, command, recorder(command, []))
    monkeypatch.setattr(queue_services, "queue_messages_purge", recorder("purge", 2))
    return sent


@pytest.fixture
def operator() -> Any:
    return api_client(user_with("scheduler.control_workers"))


def test_it_lists_every_queue_with_its_pause(operator):
    QueuePause.objects.create(queue="llm", paused_by_name="alice", note="model down")

    rows = response_json(operator.get("/api/queues/"))

    assert [row["name"] for row in rows] == list(QUEUES)
    llm = next(row for row in rows if row["name"] == "llm")
    assert (llm["paused"], llm["paused_by"], llm["note"]) == (True, "alice", "model down")
    assert all(row["paused"] is False for row in rows if row["name"] != "llm")
    assert all(isinstance(row["depth"], int) for row in rows)


def test_a_pause_from_the_dashboard_is_audited_as_the_dashboards(operator, control):
    response = operator.post(
        "/api/queues/llm/pause/",
        {"note": "model down"},
        format="json",
        headers={"X-Scheduler-Source": "dashboard"},
    )
    plain = operator.post("/api/queues/llm/resume/")

    assert response.status_code == 200, response.content
    body = response_json(response)
    assert (body["name"], body["paused"], body["changed"], body["note"]) == (
        "llm",
        True,
        True,
        "model down",
    )
    assert response_json(plain)["paused"] is False
    assert control[0] == ("cancel_consumer", "llm")
    entries = AuditEntry.objects.order_by("id")
    assert [(e.action, e.periodic_task_name, e.source) for e in entries] == [
        ("queue_paused", "queue:llm", "dashboard"),
        ("queue_resumed", "queue:llm", "api"),
    ]
    assert all(e.actor is not None for e in entries)
    assert list(TaskEvent.objects.order_by("id").values_list("type", flat=True)) == [
        "queue.paused",
        "queue.resumed",
    ]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/queues/nope/pause/", {}),
        ("/api/queues/nope/resume/", None),
        ("/api/queues/nope/purge/", {"confirm": "nope"}),
    ],
)
def test_an_unknown_queue_is_a_404_naming_ours(operator, control, path, body):
    response = operator.post(path, body, format="json")

    assert response.status_code == 404
    assert "no queue named 'nope' (queues: default, agents" in response_json(response)["detail"]
    assert control == []
    assert not AuditEntry.objects.exists()


def test_staff_without_control_workers_are_refused_and_nothing_changes(control):
    runner = api_client(user_with("scheduler.run_tasks"))

    responses = [
        runner.post("/api/queues/default/pause/", {}, format="json"),
        runner.post("/api/queues/default/resume/"),
        runner.post("/api/queues/default/purge/", {"confirm": "default"}, format="json"),
    ]

    for response in responses:
        assert response.status_code == 403
        assert "scheduler.control_workers" in response_json(response)["detail"]
    assert response_json(runner.get("/api/queues/"))  # reading needs no permission
    assert control == []
    assert not QueuePause.objects.exists()
    assert not AuditEntry.objects.exists()


def test_a_purge_without_the_queues_name_removes_nothing(operator, control):
    missing = operator.post("/api/queues/default/purge/", {}, format="json")
    wrong = operator.post("/api/queues/default/purge/", {"confirm": "Default"}, format="json")
    purged = operator.post("/api/queues/default/purge/", {"confirm": "default"}, format="json")

    assert response_json(missing) == {"confirm": ["This field is required."]}
    assert "type the queue's name, 'default'" in response_json(wrong)["confirm"][0]
    assert response_json(purged) == {"queue": "default", "purged": 2}
    assert control == [("purge", "default")]
    assert AuditEntry.objects.get().changes == {"messages": [2, 0]}
