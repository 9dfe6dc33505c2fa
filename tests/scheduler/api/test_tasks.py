"""The REST API's tasks: the catalog, queuing a task (`POST /api/tasks/`), the stored results
(`GET /api/tasks/`), one task's state (`GET /api/tasks/{id}/`, its `wait` checked; the wait
itself is test_wait.py's), and revoking or retrying a run, with their answers to bad input.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from config.celery import app as celery_app
from scheduler.catalog import load_catalog
from scheduler.models import AuditEntry, TaskEvent
from tests.clients import response_json
from tests.factories import TaskResultFactory
from tests.queues import take_queued
from tests.scheduler.api.helpers import TASK_ID

pytestmark = pytest.mark.django_db


# --- Catalog -------------------------------------------------------------------------------------


def test_it_lists_the_catalog_with_each_parameter_schema(api_admin):
    response = api_admin.get("/api/catalog/")

    assert response.status_code == 200
    entries = {entry["name"]: entry for entry in response_json(response)}
    assert set(entries) == set(load_catalog().names())
    sleep = entries["scheduler.sleep"]
    assert set(sleep) == {"name", "description", "queue", "overlap", "schema"}
    assert sleep["schema"]["properties"]["seconds"]["maximum"] == 8
    assert sleep["queue"] == load_catalog().get("scheduler.sleep").queue


# --- POST /api/tasks/ ----------------------------------------------------------------------------


def test_it_queues_a_catalog_task_with_its_params(api_admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post(
            "/api/tasks/",
            {"task": "scheduler.sleep", "params": {"seconds": 0.5}},
            format="json",
        )

    assert response.status_code == 202, response.content
    body = response_json(response)
    assert body["status"] == "queued"
    assert body["url"] == f"http://testserver/api/tasks/{body['task_id']}/"
    message = take_queued(load_catalog().get("scheduler.sleep").queue, body["task_id"])
    assert message is not None, "the run is not in the Redis list of its queue"
    assert message["headers"]["task"] == "scheduler.sleep"
    assert json.loads(message["headers"]["kwargsrepr"]) == {"seconds": 0.5}
    assert TaskEvent.objects.filter(type="task.queued", task_id=body["task_id"]).exists()


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"task": "os.system"}, "task", "unknown task 'os.system'"),
        ({"task": "scheduler.sleep", "params": {"seconds": "long"}}, "params", "seconds"),
        ({"task": "scheduler.sleep", "params": {"seconds": 99}}, "params", "less than or equal"),
        ({"task": "scheduler.sleep", "params": {"minutes": 1}}, "params", "not a parameter"),
        ({"task": "scheduler.sleep", "params": [1, 2]}, "params", "must be a JSON object"),
        ({"task": "scheduler.ping", "queue": "nowhere"}, "queue", "unknown queue 'nowhere'"),
        ({"task": ["scheduler.ping"]}, "task", "Not a valid string"),
        ({"task": None}, "task", "may not be null"),
        ({"params": {}}, "task", "required"),
        ({"task": "scheduler.ping", "parms": {}}, "parms", "is not a field"),
        ([{"task": "scheduler.ping"}], "body", "Expected a dictionary"),
        ("just text", "body", "Expected a dictionary"),
    ],
)
def test_it_answers_400_naming_the_field_for_bad_task_input(api_admin, body, field, says):
    response = api_admin.post("/api/tasks/", body, format="json")

    assert response.status_code == 400, response.content
    errors = response_json(response)
    assert list(errors) == [field]
    assert says in " ".join(errors[field])
    assert not TaskEvent.objects.filter(type="task.queued").exists()


@pytest.mark.parametrize(
    "raw", ['{"task": "scheduler.ping",', "not json", '{"task": }', "{'a': 1}"]
)
def test_it_answers_400_for_a_malformed_json_body(api_admin, raw):
    response = api_admin.generic("POST", "/api/tasks/", raw, content_type="application/json")

    assert response.status_code == 400, response.content
    errors = response_json(response)
    assert list(errors) == ["body"]
    assert "JSON parse error" in errors["body"][0]


def test_it_answers_400_naming_the_missing_field_of_an_empty_body(api_admin):
    response = api_admin.generic("POST", "/api/tasks/", "", content_type="application/json")

    assert response.status_code == 400
    assert response_json(response) == {"task": ["This field is required."]}


def test_it_answers_415_json_to_a_body_that_is_not_json(api_admin):
    response = api_admin.post("/api/tasks/", {"task": "scheduler.ping"})  # form-encoded

    assert response.status_code == 415
    assert "Unsupported media type" in response_json(response)["detail"]


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_json_when_the_broker_is_down(api_admin, monkeypatch):
    def broker_down(*args: Any, **kwargs: Any) -> str:
        raise OperationalError("Error 111 connecting to redis. Connection refused.")

    # The send itself fails (after the audited transaction committed), as with Redis down.
    monkeypatch.setattr(celery_app, "send_task", broker_down)

    response = api_admin.post("/api/tasks/", {"task": "scheduler.ping"}, format="json")

    assert response.status_code == 503
    assert "broker is unavailable" in response_json(response)["detail"]
    assert response["Retry-After"] == "5"


# --- GET /api/tasks/ -----------------------------------------------------------------------------


def _result(**fields: Any) -> TaskResult:
    return TaskResultFactory.create(**fields)


def test_it_lists_stored_results_newest_first_in_pages(api_admin):
    now = timezone.now()
    for minutes in range(5):
        row = _result(task_id=f"run-{minutes}", worker="w1@host")
        TaskResult.objects.filter(pk=row.pk).update(
            date_done=now - timedelta(minutes=minutes),
            date_started=now - timedelta(minutes=minutes, seconds=2),
        )

    first = response_json(api_admin.get("/api/tasks/?page_size=2"))
    last = response_json(api_admin.get("/api/tasks/?page_size=2&page=3"))

    assert first["count"] == 5
    assert [row["task_id"] for row in first["results"]] == ["run-0", "run-1"]
    assert first["next"].endswith("/api/tasks/?page=2&page_size=2")
    assert first["previous"] is None
    assert [row["task_id"] for row in last["results"]] == ["run-4"]
    row = first["results"][0]
    assert set(row) == {
        "task_id",
        "task_name",
        "periodic_task_name",
        "status",
        "worker",
        "date_created",
        "date_done",
        "duration",
        "url",
    }
    assert row["duration"] == pytest.approx(2.0)
    assert row["worker"] == "w1@host"
    assert row["url"] == "http://testserver/api/tasks/run-0/"


def test_it_filters_results_like_the_cli(api_admin):
    old = _result(task_id="old-failure", status="FAILURE", task_name="scheduler.sleep")
    TaskResult.objects.filter(pk=old.pk).update(date_done=timezone.now() - timedelta(days=3))
    _result(task_id="new-failure", status="FAILURE", task_name="scheduler.sleep")
    _result(task_id="new-success", status="SUCCESS", task_name="scheduler.ping")
    nightly = _result(task_id="nightly", status="SUCCESS")
    TaskResult.objects.filter(pk=nightly.pk).update(periodic_task_name="nightly ping")

    def ids(query: str) -> set[str]:
        response = api_admin.get(f"/api/tasks/?{query}")
        assert response.status_code == 200, response.content
        return {row["task_id"] for row in response_json(response)["results"]}

    assert ids("status=Failed") == {"old-failure", "new-failure"}
    assert ids(
        "status=failure&since=" + (timezone.now() - timedelta(days=1)).date().isoformat()
    ) == {"new-failure"}
    assert ids("task_name=scheduler.ping") == {"new-success", "nightly"}
    assert ids("periodic_task=nightly+ping") == {"nightly"}


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ("status=exploded", "status", "unknown status 'exploded'"),
        ("since=yesterday", "since", "is not an ISO 8601 date or time"),
        ("page=99", "detail", "Invalid page"),
        ("page=abc", "detail", "Invalid page"),
    ],
)
def test_it_answers_json_errors_for_bad_history_filters(api_admin, query, field, says):
    _result()

    response = api_admin.get(f"/api/tasks/?{query}")

    assert response.status_code == (404 if field == "detail" else 400), response.content
    assert says in str(response_json(response)[field])


# --- GET /api/tasks/{id}/ ------------------------------------------------------------------------


def test_it_reports_an_unknown_task_as_pending_as_celery_does(api_admin):
    response = api_admin.get(f"/api/tasks/{TASK_ID}/")

    assert response.status_code == 200
    assert response_json(response) == {
        "task_id": TASK_ID,
        "state": "PENDING",
        "task_name": None,
        "result": None,
        "error": None,
        "traceback": None,
        "date_started": None,
        "date_done": None,
        "worker": None,
    }


def test_it_reports_a_finished_task_through_async_result(api_admin):
    row = _result(task_id=TASK_ID, result='{"pong": true}', worker="w1@host")
    TaskResult.objects.filter(pk=row.pk).update(date_started=timezone.now() - timedelta(seconds=1))

    body = response_json(api_admin.get(f"/api/tasks/{TASK_ID}/"))

    assert body["state"] == "SUCCESS"
    assert body["result"] == {"pong": True}
    assert body["error"] is None
    assert body["worker"] == "w1@host"
    assert body["task_name"] == "scheduler.ping"
    assert body["date_done"] is not None
    assert body["date_started"] is not None


def test_it_reports_the_error_of_a_failed_task(api_admin):
    _result(
        task_id=TASK_ID,
        status="FAILURE",
        result=json.dumps(
            {
                "exc_type": "ZeroDivisionError",
                "exc_message": ["division by zero"],
                "exc_module": "builtins",
            }
        ),
        traceback="Traceback (most recent call last):\nZeroDivisionError: division by zero",
    )

    body = response_json(api_admin.get(f"/api/tasks/{TASK_ID}/"))

    assert body["state"] == "FAILURE"
    assert body["result"] is None
    assert body["error"] == "ZeroDivisionError: division by zero"
    assert body["traceback"].endswith("ZeroDivisionError: division by zero")


def test_it_answers_a_wait_on_a_finished_task_at_once(api_admin):
    _result(task_id=TASK_ID)

    response = api_admin.get(f"/api/tasks/{TASK_ID}/?wait=30")

    assert response.status_code == 200
    assert response_json(response)["state"] == "SUCCESS"


@pytest.mark.parametrize(
    ("wait", "says"),
    [
        ("0", "more than 0"),
        ("-1", "more than 0"),
        ("31", "at most 30"),
        ("nan", "valid number"),
        ("inf", "valid number"),
        ("soon", "valid number"),
    ],
)
def test_it_answers_400_for_a_bad_wait(api_admin, wait, says):
    response = api_admin.get(f"/api/tasks/{TASK_ID}/?wait={wait}")

    assert response.status_code == 400, response.content
    assert says in response_json(response)["wait"][0]


# --- Revoke and retry ----------------------------------------------------------------------------


def test_it_asks_the_workers_to_revoke_a_task(api_admin, monkeypatch):
    revoked = []
    monkeypatch.setattr(
        celery_app.control, "revoke", lambda task_id, **options: revoked.append((task_id, options))
    )
    # Queued, not run yet: as `task_enqueue` records it.
    TaskEvent.objects.create(
        type="task.queued", task_id=TASK_ID, state="PENDING", created_at=timezone.now()
    )

    plain = api_admin.post(f"/api/tasks/{TASK_ID}/revoke/")
    terminate = api_admin.post(f"/api/tasks/{TASK_ID}/revoke/", {"terminate": True}, format="json")

    assert plain.status_code == terminate.status_code == 202
    assert response_json(plain) == {
        "task_id": TASK_ID,
        "status": "revoke requested",
        "state": "PENDING",
        "task_name": "",
        "periodic_task_name": "",
    }
    assert response_json(terminate)["status"] == "terminate requested"
    assert revoked == [
        (TASK_ID, {"terminate": False, "signal": "SIGTERM"}),
        (TASK_ID, {"terminate": True, "signal": "SIGTERM"}),
    ]
    audit = AuditEntry.objects.order_by("id")
    assert [(entry.action, entry.source, entry.periodic_task_name) for entry in audit] == [
        ("revoked", "api", TASK_ID),
        ("terminated", "api", TASK_ID),
    ]
    assert all(entry.actor is not None and entry.actor.is_superuser for entry in audit)
    shown = TaskEvent.objects.filter(type="task.revoked", task_id=TASK_ID).order_by("id")
    assert [event.state for event in shown] == ["REVOKED", "REVOKED"]
    assert shown[0].message.startswith("revoked by ")


def test_it_answers_404_to_a_revoke_of_a_task_nobody_queued_and_stores_nothing(
    api_admin, monkeypatch
):
    monkeypatch.setattr(celery_app.control, "revoke", lambda *a, **k: pytest.fail("revoked"))

    response = api_admin.post("/api/tasks/hello-world/revoke/")

    assert response.status_code == 404
    assert "hello-world" in response_json(response)["detail"]
    assert not TaskResult.objects.filter(task_id="hello-world").exists()
    assert not TaskEvent.objects.filter(task_id="hello-world").exists()


def test_it_refuses_to_revoke_a_finished_task(api_admin, monkeypatch):
    monkeypatch.setattr(celery_app.control, "revoke", lambda *a, **k: pytest.fail("revoked"))
    _result(task_id=TASK_ID)

    response = api_admin.post(f"/api/tasks/{TASK_ID}/revoke/")

    assert response.status_code == 400
    assert "has finished already (SUCCESS)" in response_json(response)["task_id"][0]


def test_it_answers_400_for_a_bad_revoke_body(api_admin):
    response = api_admin.post(
        f"/api/tasks/{TASK_ID}/revoke/", {"terminate": "perhaps"}, format="json"
    )

    assert response.status_code == 400
    assert "valid boolean" in response_json(response)["terminate"][0]


def test_it_retries_a_stored_run_as_a_new_task(api_admin, django_capture_on_commit_callbacks):
    _result(task_id=TASK_ID, task_name="scheduler.sleep", task_kwargs="\"{'seconds': 0.25}\"")

    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post(f"/api/tasks/{TASK_ID}/retry/")

    assert response.status_code == 202, response.content
    new_id = response_json(response)["task_id"]
    assert new_id != TASK_ID
    message = take_queued(load_catalog().get("scheduler.sleep").queue, new_id)
    assert message is not None
    assert json.loads(message["headers"]["kwargsrepr"]) == {"seconds": 0.25}


def test_a_run_and_a_retry_are_audited_as_the_user_who_asked(api_admin):
    _result(task_id=TASK_ID, task_name="scheduler.sleep", task_kwargs="\"{'seconds': 0.25}\"")

    ran = api_admin.post("/api/tasks/", {"task": "scheduler.ping"}, format="json")
    retried = api_admin.post(f"/api/tasks/{TASK_ID}/retry/")

    entries = list(AuditEntry.objects.order_by("id"))
    assert [(entry.action, entry.source, entry.periodic_task_name) for entry in entries] == [
        ("task_run", "api", "scheduler.ping"),
        ("retried", "api", "scheduler.sleep"),
    ]
    assert entries[0].changes["task_id"] == [None, response_json(ran)["task_id"]]
    assert entries[1].changes["task_id"] == [TASK_ID, response_json(retried)["task_id"]]
    assert all(entry.actor is not None and entry.actor.is_superuser for entry in entries)


def test_it_answers_404_to_retrying_a_task_with_no_stored_result(api_admin):
    response = api_admin.post(f"/api/tasks/{TASK_ID}/retry/")

    assert response.status_code == 404
    assert response_json(response) == {"detail": f"no stored result for task {TASK_ID}"}


def test_it_retries_only_catalog_tasks(api_admin):
    _result(task_id=TASK_ID, task_name="somebody.elses_task")

    response = api_admin.post(f"/api/tasks/{TASK_ID}/retry/")

    assert response.status_code == 400
    assert "unknown task 'somebody.elses_task'" in response_json(response)["task"][0]
