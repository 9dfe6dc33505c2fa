"""The REST API: every endpoint, its permissions, and its answers to bad input (all JSON)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from config.celery import app as celery_app
from scheduler import selectors, services
from scheduler.catalog import load_catalog
from scheduler.core.redis_connection import get_redis
from scheduler.models import AuditEntry, TaskEvent
from scheduler.services import ScheduleError, schedule_create
from tests.clients import api_client, response_json
from tests.factories import TaskResultFactory, make_schedule, user_with

pytestmark = pytest.mark.django_db

TASK_ID = "6f1c2b9e-8a57-4c1e-9d0b-3f2a1b4c5d6e"

# --- Helpers -------------------------------------------------------------------------------------


def _schedule_url(periodic_task: PeriodicTask, action: str = "") -> str:
    return f"/api/schedules/{periodic_task.pk}/" + (f"{action}/" if action else "")


def take_queued(queue: str, task_id: str) -> dict[str, Any] | None:
    """The message of `task_id` in the Redis list of `queue`, removed so no worker runs it."""
    client = get_redis()
    key = f"{settings.REDIS_KEY_PREFIX}{queue}"
    for raw in cast("list[bytes]", client.lrange(key, 0, -1)):
        message = json.loads(raw)
        if message["headers"]["id"] == task_id:
            client.lrem(key, 1, raw.decode())
            return message
    return None


# Every endpoint of the contract: (method, path, body).
def _endpoints(schedule_id: int) -> list[tuple[str, str, Any]]:
    return [
        ("get", "/api/catalog/", None),
        ("get", "/api/tasks/", None),
        ("post", "/api/tasks/", {"task": "scheduler.ping"}),
        ("get", f"/api/tasks/{TASK_ID}/", None),
        ("post", f"/api/tasks/{TASK_ID}/revoke/", {}),
        ("post", f"/api/tasks/{TASK_ID}/retry/", None),
        ("get", "/api/schedules/", None),
        ("post", "/api/schedules/", {"name": "x", "task": "scheduler.ping", "schedule": "daily"}),
        ("get", f"/api/schedules/{schedule_id}/", None),
        ("put", f"/api/schedules/{schedule_id}/", {"name": "x", "task": "t", "schedule": "s"}),
        ("patch", f"/api/schedules/{schedule_id}/", {"description": "x"}),
        ("delete", f"/api/schedules/{schedule_id}/", None),
        ("post", f"/api/schedules/{schedule_id}/run/", None),
        ("post", f"/api/schedules/{schedule_id}/enable/", None),
        ("post", f"/api/schedules/{schedule_id}/disable/", None),
        ("get", "/api/schema/", None),
    ]


def _call(client: APIClient, method: str, path: str, body: Any) -> Any:
    return (
        getattr(client, method)(path, body, format="json")
        if body is not None
        else getattr(client, method)(path)
    )


# --- Authentication and permissions --------------------------------------------------------------


def test_it_answers_401_json_to_anonymous_callers_on_every_endpoint():
    periodic_task = make_schedule()
    client = APIClient()

    for method, path, body in _endpoints(periodic_task.pk):
        response = _call(client, method, path, body)

        assert response.status_code == 401, (method, path, response.content)
        assert "credentials were not provided" in response_json(response)["detail"]
        assert response["WWW-Authenticate"] == "Token"
    assert PeriodicTask.objects.filter(pk=periodic_task.pk).exists()


def test_it_answers_403_json_to_users_who_are_not_staff():
    periodic_task = make_schedule()
    client = api_client(user_with(staff=False))

    for method, path, body in _endpoints(periodic_task.pk):
        response = _call(client, method, path, body)

        assert response.status_code == 403, (method, path, response.content)
        assert response_json(response)["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body", "permission"),
    [
        ("post", "/api/tasks/", {"task": "scheduler.ping"}, "scheduler.run_tasks"),
        ("post", f"/api/tasks/{TASK_ID}/revoke/", {}, "scheduler.run_tasks"),
        ("post", f"/api/tasks/{TASK_ID}/retry/", None, "scheduler.run_tasks"),
        (
            "post",
            "/api/schedules/",
            {"name": "x", "task": "scheduler.ping", "schedule": "daily"},
            "django_celery_beat.add_periodictask",
        ),
        ("put", "{schedule}", {"name": "x", "task": "t", "schedule": "s"}, "change_periodictask"),
        ("patch", "{schedule}", {"description": "x"}, "django_celery_beat.change_periodictask"),
        ("delete", "{schedule}", None, "django_celery_beat.delete_periodictask"),
        ("post", "{schedule}run/", None, "django_celery_beat.change_periodictask"),
        ("post", "{schedule}enable/", None, "django_celery_beat.change_periodictask"),
        ("post", "{schedule}disable/", None, "django_celery_beat.change_periodictask"),
    ],
)
def test_it_answers_403_to_staff_without_the_permission_a_write_needs(
    method, path, body, permission
):
    periodic_task = make_schedule(name="guarded")
    client = api_client(user_with())  # staff, no permissions: may read only

    response = _call(client, method, path.format(schedule=_schedule_url(periodic_task)), body)

    assert response.status_code == 403, response.content
    assert permission in response_json(response)["detail"]
    assert PeriodicTask.objects.get(pk=periodic_task.pk).name == "guarded"
    assert not AuditEntry.objects.exclude(action="created").exists()


def test_it_lets_staff_read_without_any_permission():
    periodic_task = make_schedule()
    client = api_client(user_with())

    for path in ("/api/catalog/", "/api/tasks/", "/api/schedules/", _schedule_url(periodic_task)):
        assert client.get(path).status_code == 200, path
    assert client.get(f"/api/tasks/{TASK_ID}/").status_code == 200


def test_it_lets_staff_write_with_exactly_the_permission_it_needs(
    django_capture_on_commit_callbacks,
):
    runner = api_client(user_with("scheduler.run_tasks"))
    creator = api_client(user_with("django_celery_beat.add_periodictask"))

    with django_capture_on_commit_callbacks(execute=False):
        assert runner.post(
            "/api/tasks/", {"task": "scheduler.ping"}, format="json"
        ).status_code == (202)
    body = {"name": "made by creator", "task": "scheduler.ping", "schedule": "every hour"}
    assert creator.post("/api/schedules/", body, format="json").status_code == 201
    # ...and no more than it.
    made = PeriodicTask.objects.get(name="made by creator")
    assert creator.delete(_schedule_url(made)).status_code == 403
    assert runner.post("/api/schedules/", body, format="json").status_code == 403


def test_it_authenticates_with_a_token():
    user = user_with(superuser=True)
    token = Token.objects.create(user=user)
    client = APIClient()

    ok = client.get("/api/catalog/", HTTP_AUTHORIZATION=f"Token {token.key}")
    wrong = client.get("/api/catalog/", HTTP_AUTHORIZATION="Token not-a-token")

    assert ok.status_code == 200
    assert wrong.status_code == 401
    assert response_json(wrong) == {"detail": "Invalid token."}


def test_it_refuses_the_token_of_an_inactive_user():
    user = user_with(superuser=True)
    token = Token.objects.create(user=user)
    user.is_active = False
    user.save()

    response = APIClient().get("/api/catalog/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 401
    assert "inactive" in response_json(response)["detail"]


def test_it_enforces_csrf_on_session_writes(django_capture_on_commit_callbacks):
    client = api_client(user_with(superuser=True), enforce_csrf_checks=True)

    refused = client.post("/api/tasks/", {"task": "scheduler.ping"}, format="json")

    assert refused.status_code == 403
    assert "CSRF" in response_json(refused)["detail"]
    assert not TaskEvent.objects.filter(type="task.queued").exists()
    # The page the session came from gave it a CSRF cookie: sent back as the header, it passes.
    assert client.get("/admin/").status_code == 200
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    with django_capture_on_commit_callbacks(execute=False):
        accepted = client.post(
            "/api/tasks/", {"task": "scheduler.ping"}, format="json", HTTP_X_CSRFTOKEN=token
        )
    assert accepted.status_code == 202, accepted.content
    # Reads need no CSRF token.
    assert client.get("/api/tasks/").status_code == 200


def test_it_needs_no_csrf_token_with_token_authentication(django_capture_on_commit_callbacks):
    token = Token.objects.create(user=user_with(superuser=True))
    client = APIClient(enforce_csrf_checks=True)

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/api/tasks/",
            {"task": "scheduler.ping"},
            format="json",
            HTTP_AUTHORIZATION=f"Token {token.key}",
        )

    assert response.status_code == 202, response.content


def test_it_throttles_each_user_with_a_json_429(monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "2/minute", "anon": None})
    cache.clear()
    client = api_client(user_with())
    try:
        codes = [client.get("/api/catalog/").status_code for _ in range(3)]
        throttled = client.get("/api/catalog/")
        other = api_client(user_with()).get("/api/catalog/")
    finally:
        cache.clear()

    assert codes == [200, 200, 429]
    assert "throttled" in response_json(throttled)["detail"]
    assert int(throttled["Retry-After"]) > 0
    assert other.status_code == 200  # counted per user


def test_it_never_throttles_the_health_endpoint(monkeypatch):
    monkeypatch.setattr(
        UserRateThrottle, "THROTTLE_RATES", {"user": "1/minute", "anon": "1/minute"}
    )
    cache.clear()
    try:
        codes = {APIClient().get("/api/health/").status_code for _ in range(3)}
    finally:
        cache.clear()

    assert 429 not in codes


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


def test_it_answers_503_json_when_the_broker_is_down(api_admin, monkeypatch):
    def broker_down(*args: Any, **kwargs: Any) -> str:
        raise OperationalError("Error 111 connecting to redis. Connection refused.")

    monkeypatch.setattr(services, "task_enqueue", broker_down)

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


@pytest.mark.parametrize(
    "path",
    [
        "/api/tasks/not%20an%20id/",
        "/api/tasks/-leading-dash/",
        "/api/tasks/" + "a" * 300 + "/",
        "/api/tasks/%00/",
        "/api/tasks/a%2Fb/",
        "/api/tasks/%E2%9C%93/",
    ],
)
def test_it_answers_404_json_for_a_malformed_task_id(api_admin, path):
    response = api_admin.get(path)

    assert response.status_code == 404
    assert "no such API endpoint" in response_json(response)["detail"]


def test_it_answers_405_json_to_a_method_an_endpoint_does_not_have(api_admin):
    for method, path in [
        ("delete", "/api/catalog/"),
        ("put", f"/api/tasks/{TASK_ID}/"),
        ("get", f"/api/tasks/{TASK_ID}/revoke/"),
        ("get", "/api/schedules/1/run/"),
    ]:
        response = getattr(api_admin, method)(path)

        assert response.status_code == 405, (method, path)
        assert "not allowed" in response_json(response)["detail"]


def test_it_answers_404_json_for_an_unknown_api_path_and_html_elsewhere(api_admin):
    api = api_admin.get("/api/nothing-here/")
    page = api_admin.get("/nothing-here/")

    assert api.status_code == 404
    assert response_json(api) == {"detail": "no such API endpoint: /api/nothing-here/"}
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


def test_it_answers_500_json_when_the_api_itself_fails(api_admin, monkeypatch, caplog):
    def broken(**filters: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "task_history", broken)

    response = api_admin.get("/api/tasks/")

    assert response.status_code == 500
    assert response_json(response) == {"detail": "internal error (logged on the server)"}
    assert "unhandled error in GET /api/tasks/" in caplog.text


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
    assert response_json(plain) == {"task_id": TASK_ID, "status": "revoke requested"}
    assert revoked == [
        (TASK_ID, {"terminate": False, "signal": "SIGTERM"}),
        (TASK_ID, {"terminate": True, "signal": "SIGTERM"}),
    ]


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


def test_it_answers_404_to_retrying_a_task_with_no_stored_result(api_admin):
    response = api_admin.post(f"/api/tasks/{TASK_ID}/retry/")

    assert response.status_code == 404
    assert response_json(response) == {"detail": f"no stored result for task {TASK_ID}"}


def test_it_retries_only_catalog_tasks(api_admin):
    _result(task_id=TASK_ID, task_name="somebody.elses_task")

    response = api_admin.post(f"/api/tasks/{TASK_ID}/retry/")

    assert response.status_code == 400
    assert "unknown task 'somebody.elses_task'" in response_json(response)["task"][0]


# --- Schedules -----------------------------------------------------------------------------------

SCHEDULE_FIELDS = {
    "id",
    "name",
    "task",
    "schedule",
    "schedule_description",
    "timezone",
    "params",
    "queue",
    "enabled",
    "description",
    "overlap",
    "overlap_effective",
    "in_catalog",
    "misfire",
    "next_run",
    "last_run_at",
    "total_run_count",
    "url",
}


def test_it_creates_a_schedule_through_the_service():
    user = user_with(superuser=True)
    body = {
        "name": "morning nap",
        "task": "scheduler.sleep",
        "schedule": "every monday at 8am",
        "params": {"seconds": 2},
        "timezone": "Europe/Paris",
        "description": "a short one",
        "overlap": "skip",
        "misfire": "skip",
        "enabled": False,
    }

    response = api_client(user).post("/api/schedules/", body, format="json")

    assert response.status_code == 201, response.content
    data = response_json(response)
    assert set(data) == SCHEDULE_FIELDS
    periodic_task = PeriodicTask.objects.get(name="morning nap")
    assert data["id"] == periodic_task.pk
    assert response["Location"] == data["url"] == f"http://testserver/api/schedules/{data['id']}/"
    assert data["schedule"] == "every monday at 8am"
    assert data["timezone"] == "Europe/Paris"
    assert data["params"] == {"seconds": 2}
    assert (data["overlap"], data["misfire"], data["enabled"]) == ("skip", "skip", False)
    assert data["next_run"] is None  # disabled
    assert data["queue"] == load_catalog().get("scheduler.sleep").queue
    entry = AuditEntry.objects.get(periodic_task_name="morning nap", action="created")
    assert (entry.source, entry.actor) == ("api", user)


def test_it_uses_the_create_defaults_of_the_service(api_admin):
    response = api_admin.post(
        "/api/schedules/",
        {"name": "ping", "task": "scheduler.ping", "schedule": "*/5 * * * *"},
        format="json",
    )

    data = response_json(response)
    assert response.status_code == 201
    assert data["enabled"] is True
    assert data["timezone"] == "UTC"
    assert data["params"] == {}
    assert data["misfire"] == "run_once"
    assert data["next_run"] is not None
    assert data["schedule"] == "*/5 * * * *"
    assert "5 minutes" in data["schedule_description"]


def _service_errors(**fields: Any) -> dict[str, list[str]]:
    try:
        schedule_create(**fields)
    except ScheduleError as exc:
        return exc.errors
    raise AssertionError("the service accepted it")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a", "task": "scheduler.ping", "schedule": "every blue moon"},
        {"name": "a", "task": "os.system", "schedule": "daily"},
        {"name": "a", "task": "scheduler.sleep", "schedule": "daily", "params": {"seconds": -1}},
        {"name": "a", "task": "scheduler.ping", "schedule": "daily", "timezone": "Mars/Olympus"},
        {"name": "a", "task": "scheduler.ping", "schedule": "daily", "overlap": "sometimes"},
        {"name": "a", "task": "scheduler.ping", "schedule": "daily", "misfire": "never"},
        {"name": "a", "task": "scheduler.ping", "schedule": "daily", "queue": "nowhere"},
        {"name": "", "task": "scheduler.ping", "schedule": "daily"},
        {"name": "b", "task": "nope", "schedule": "nope", "params": [1]},
    ],
)
def test_it_answers_schedule_errors_with_the_messages_of_the_admin_and_cli(api_admin, body):
    fields = {("tz" if key == "timezone" else key): value for key, value in body.items()}
    expected = _service_errors(**fields)

    response = api_admin.post("/api/schedules/", body, format="json")

    assert response.status_code == 400
    assert response_json(response) == expected
    assert not PeriodicTask.objects.exists()


def test_it_refuses_a_second_schedule_of_the_same_name(api_admin):
    make_schedule(name="taken")

    response = api_admin.post(
        "/api/schedules/",
        {"name": "taken", "task": "scheduler.ping", "schedule": "daily"},
        format="json",
    )

    assert response.status_code == 400
    assert response_json(response) == {"name": ["a periodic task named 'taken' already exists"]}


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"task": "scheduler.ping", "schedule": "daily"}, "name", "required"),
        ({"name": ["a"], "task": "scheduler.ping", "schedule": "daily"}, "name", "valid string"),
        ({"name": "a", "task": "scheduler.ping", "schedule": {}}, "schedule", "valid string"),
        (
            {"name": "a", "task": "scheduler.ping", "schedule": "daily", "enabled": "maybe"},
            "enabled",
            "valid boolean",
        ),
        (
            {"name": "a", "task": "scheduler.ping", "schedule": "daily", "every": "day"},
            "every",
            "not a field",
        ),
    ],
)
def test_it_answers_400_for_schedule_fields_of_the_wrong_type(api_admin, body, field, says):
    response = api_admin.post("/api/schedules/", body, format="json")

    assert response.status_code == 400
    assert says in " ".join(response_json(response)[field])


def test_it_lists_schedules_in_pages_and_by_state(api_admin):
    make_schedule(name="b on")
    make_schedule(name="a off", enabled=False)
    make_schedule(name="c on")

    everything = response_json(api_admin.get("/api/schedules/"))
    enabled = response_json(api_admin.get("/api/schedules/?enabled=true"))
    disabled = response_json(api_admin.get("/api/schedules/?enabled=false"))
    bad = api_admin.get("/api/schedules/?enabled=sometimes")

    assert [row["name"] for row in everything["results"]] == ["a off", "b on", "c on"]
    assert everything["count"] == 3
    assert set(everything["results"][0]) == SCHEDULE_FIELDS
    assert [row["name"] for row in enabled["results"]] == ["b on", "c on"]
    assert [row["name"] for row in disabled["results"]] == ["a off"]
    assert bad.status_code == 400
    assert "enabled" in response_json(bad)


def test_it_shows_one_schedule(api_admin):
    periodic_task = make_schedule(name="shown", schedule="every day at 2am", params={})

    data = response_json(api_admin.get(_schedule_url(periodic_task)))

    assert data["name"] == "shown"
    assert data["schedule"] == "every day at 2am"
    assert data["next_run"] is not None
    assert data["total_run_count"] == 0
    assert data["last_run_at"] is None


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("put", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "run/"),
        ("post", "enable/"),
        ("post", "disable/"),
    ],
)
def test_it_answers_404_json_for_an_unknown_schedule(api_admin, method, suffix):
    for schedule_id in ("999999", "0", "123456789012345678"):
        response = getattr(api_admin, method)(
            f"/api/schedules/{schedule_id}/{suffix}", {}, format="json"
        )

        assert response.status_code == 404, (method, schedule_id, suffix)
        assert response_json(response) == {"detail": f"no schedule with id {schedule_id}"}


@pytest.mark.parametrize("schedule_id", ["abc", "-1", "1.5", "1" * 30, "%00"])
def test_it_answers_404_json_for_a_schedule_id_that_is_no_number(api_admin, schedule_id):
    response = api_admin.get(f"/api/schedules/{schedule_id}/")

    assert response.status_code == 404
    assert "no such API endpoint" in response_json(response)["detail"]


def test_it_changes_only_the_fields_a_patch_gives():
    user = user_with("django_celery_beat.change_periodictask")
    periodic_task = make_schedule(name="patched", task="scheduler.sleep", params={"seconds": 1})

    response = api_client(user).patch(
        _schedule_url(periodic_task),
        {"schedule": "every 10 minutes", "description": "slower", "name": "renamed"},
        format="json",
    )

    assert response.status_code == 200, response.content
    data = response_json(response)
    assert (data["name"], data["schedule"], data["description"]) == (
        "renamed",
        "every 10 minutes",
        "slower",
    )
    assert data["params"] == {"seconds": 1}
    assert data["task"] == "scheduler.sleep"
    entry = AuditEntry.objects.get(periodic_task_name="renamed", action="updated")
    assert (entry.source, entry.actor) == ("api", user)
    assert set(entry.changes) >= {"schedule", "description", "name"}


def test_it_changes_nothing_when_a_patch_is_wrong(api_admin):
    periodic_task = make_schedule(name="kept", schedule="every 5 minutes")

    response = api_admin.patch(
        _schedule_url(periodic_task),
        {"schedule": "whenever", "params": {"surprise": 1}},
        format="json",
    )

    assert response.status_code == 400
    assert set(response_json(response)) == {"schedule", "params"}
    assert (
        response_json(api_admin.get(_schedule_url(periodic_task)))["schedule"] == "every 5 minutes"
    )
    assert not AuditEntry.objects.filter(action="updated").exists()


def test_it_needs_name_task_and_schedule_to_put(api_admin):
    periodic_task = make_schedule(name="put me", task="scheduler.ping")

    incomplete = api_admin.put(_schedule_url(periodic_task), {"description": "x"}, format="json")
    complete = api_admin.put(
        _schedule_url(periodic_task),
        {
            "name": "put me",
            "task": "scheduler.sleep",
            "schedule": "every hour",
            "params": {"seconds": 3},
        },
        format="json",
    )

    assert incomplete.status_code == 400
    assert set(response_json(incomplete)) == {"name", "task", "schedule"}
    assert complete.status_code == 200, complete.content
    data = response_json(complete)
    assert (data["task"], data["params"], data["schedule"]) == (
        "scheduler.sleep",
        {"seconds": 3},
        "every hour",
    )


def test_it_deletes_a_schedule():
    user = user_with("django_celery_beat.delete_periodictask")
    periodic_task = make_schedule(name="doomed")
    client = api_client(user)

    response = client.delete(_schedule_url(periodic_task))

    assert response.status_code == 204
    assert response.content == b""
    assert not PeriodicTask.objects.filter(name="doomed").exists()
    entry = AuditEntry.objects.get(periodic_task_name="doomed", action="deleted")
    assert (entry.source, entry.actor) == ("api", user)
    assert client.get(_schedule_url(periodic_task)).status_code == 404


def test_it_runs_a_schedule_now(api_admin, django_capture_on_commit_callbacks):
    periodic_task = make_schedule(name="right now", task="scheduler.ping")

    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post(_schedule_url(periodic_task, "run"))

    assert response.status_code == 202
    task_id = response_json(response)["task_id"]
    assert response_json(response)["url"].endswith(f"/api/tasks/{task_id}/")
    entry = AuditEntry.objects.get(action="run_now", periodic_task_name="right now")
    assert entry.source == "api"
    assert entry.changes["task_id"] == [None, task_id]
    message = take_queued("default", task_id)
    assert message is not None
    assert message["headers"]["periodic_task_name"] == "right now"


def test_it_disables_and_enables_a_schedule(api_admin):
    periodic_task = make_schedule(name="switch")

    disabled = api_admin.post(_schedule_url(periodic_task, "disable"))
    enabled = api_admin.post(_schedule_url(periodic_task, "enable"))

    assert disabled.status_code == enabled.status_code == 200
    assert response_json(disabled)["enabled"] is False
    assert response_json(disabled)["next_run"] is None
    assert response_json(enabled)["enabled"] is True
    assert set(response_json(enabled)) == SCHEDULE_FIELDS
    actions = list(
        AuditEntry.objects.filter(periodic_task_name="switch", source="api")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["disabled", "enabled"]


def test_it_shows_a_schedule_made_in_the_stock_admin(api_admin):
    from django_celery_beat.models import CrontabSchedule

    crontab = CrontabSchedule.objects.create(minute="not a minute", hour="*")
    periodic_task = PeriodicTask.objects.create(
        name="hand made", task="scheduler.ping", crontab=crontab, kwargs="not json"
    )

    response = api_admin.get(_schedule_url(periodic_task))

    assert response.status_code == 200
    data = response_json(response)
    assert data["params"] == "not json"
    assert data["next_run"] is None
    assert data["timezone"] == "UTC"


# --- Schema and docs -----------------------------------------------------------------------------

CONTRACT = {
    "/api/": {"get"},
    "/api/catalog/": {"get"},
    "/api/health/": {"get"},
    "/api/tasks/": {"get", "post"},
    "/api/tasks/{task_id}/": {"get"},
    "/api/tasks/{task_id}/revoke/": {"post"},
    "/api/tasks/{task_id}/retry/": {"post"},
    "/api/schedules/": {"get", "post"},
    "/api/schedules/{id}/": {"get", "put", "patch", "delete"},
    "/api/schedules/{id}/run/": {"post"},
    "/api/schedules/{id}/enable/": {"post"},
    "/api/schedules/{id}/disable/": {"post"},
    # agents/api
    "/api/sessions/": {"get", "post"},
    "/api/sessions/{session_id}/": {"get"},
    "/api/sessions/{session_id}/messages/": {"get", "post"},
    "/api/agents/{slug}/run/": {"post"},
    "/api/inbound/{slug}/": {"post"},
    # tournaments/api
    "/api/tournaments/": {"get"},
    "/api/tournaments/{tournament_id}/": {"get"},
    "/api/tournaments/{tournament_id}/leaderboard/": {"get"},
    "/api/tournaments/{tournament_id}/start/": {"post"},
    "/api/tournaments/{tournament_id}/entries/{entry_id}/run/": {"post"},
}


def test_the_openapi_schema_lists_every_endpoint_of_the_contract(api_admin):
    response = api_admin.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    paths = {path: set(operations) - {"parameters"} for path, operations in schema["paths"].items()}
    assert paths == CONTRACT
    wait = schema["paths"]["/api/tasks/{task_id}/"]["get"]["parameters"]
    assert "wait" in {parameter["name"] for parameter in wait}
    assert "PENDING" in schema["paths"]["/api/tasks/{task_id}/"]["get"]["description"]


def test_the_docs_page_renders_for_staff_and_sends_others_to_log_in(api_admin):
    response = api_admin.get("/api/docs/")
    anonymous = APIClient().get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "/api/schema/" in response.content.decode()
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")


# --- Every path under /api/ answers JSON, DEBUG or not -------------------------------------------

UNKNOWN_API_PATHS = [
    "/api/nope/",
    "/api/nope",
    "/api/sessions/abc/messages/",
    "/api/schedules/9999999999999999999999/",
    "/api/schedules/9999999999999999999999/run/",
    "/api/tournaments/99999999999999999999999/leaderboard/",
    "/api/tasks/a b/",
]


@pytest.fixture
def token_admin() -> APIClient:
    """A superuser calling with an API token, as a script would."""
    token = Token.objects.create(user=user_with(superuser=True))
    return APIClient(HTTP_AUTHORIZATION=f"Token {token.key}")


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("path", UNKNOWN_API_PATHS)
def test_it_answers_404_json_naming_the_path_to_every_method_debug_or_not(
    token_admin, settings, debug, path
):
    settings.DEBUG = debug

    for method in ("get", "post", "put", "patch", "delete", "options"):
        response = getattr(token_admin, method)(path)

        assert response.status_code == 404, (method, path)
        detail = response_json(response)["detail"]
        assert detail.startswith(f"no such API endpoint: {path}"), (method, detail)


@pytest.mark.parametrize("debug", [True, False])
def test_it_answers_401_json_to_an_anonymous_caller_on_an_unknown_path(settings, debug):
    settings.DEBUG = debug

    for path in ("/api/", "/api/nope/", "/api/schedules/9999999999999999999999/"):
        response = api_client().get(path)

        assert response.status_code == 401, path
        assert "credentials were not provided" in response_json(response)["detail"]


def test_it_answers_403_json_to_a_user_who_is_not_staff_on_an_unknown_path():
    response = api_client(user_with(staff=False)).get("/api/nope/")

    assert response.status_code == 403
    assert "staff only" in response_json(response)["detail"]


def test_it_says_an_api_path_ends_with_a_slash(api_admin):
    response = api_admin.post("/api/tasks", {"task": "scheduler.ping"}, format="json")

    assert response.status_code == 404
    assert response_json(response)["detail"] == (
        "no such API endpoint: /api/tasks (API paths end with a slash: /api/tasks/)"
    )


@pytest.mark.parametrize("debug", [True, False])
def test_it_answers_an_index_of_the_apis_parts_at_the_root(token_admin, settings, debug):
    settings.DEBUG = debug

    response = token_admin.get("/api/")

    assert response.status_code == 200
    data = response_json(response)
    parts = data["parts"]
    assert {"health", "catalog", "tasks", "schedules", "sessions", "tournaments"} <= set(parts)
    assert data["schema"] == "http://testserver/api/schema/"
    assert data["docs"] == "http://testserver/api/docs/"
    for name, part in parts.items():
        assert part["url"].startswith("http://testserver/api/"), name
        assert part["description"], name
        if name != "docs":  # a page for a browser's staff session; health is 503 without workers
            assert token_admin.get(part["url"]).status_code in (200, 503), name


@pytest.mark.parametrize(
    "path",
    [
        "/api/schedules/999999999999999999/",
        "/api/sessions/999999999999999999/messages/",
        "/api/tournaments/999999999999999999/",
    ],
)
def test_it_answers_404_json_for_the_largest_id_a_route_takes(api_admin, settings, path):
    settings.DEBUG = True

    response = api_admin.get(path)

    assert response.status_code == 404
    assert "detail" in response_json(response)


# --- Periodic tasks outside the catalog; the task's default overlap policy -----------------------


def test_it_treats_a_periodic_task_outside_the_catalog_as_every_interface_does(api_admin):
    interval = IntervalSchedule.objects.create(every=1, period="days")
    legacy = PeriodicTask.objects.create(
        name="legacy", task="billing.send_invoices", interval=interval, enabled=True
    )

    shown = api_admin.get(_schedule_url(legacy))
    patched = api_admin.patch(_schedule_url(legacy), {"description": "x"}, format="json")
    disabled = api_admin.post(_schedule_url(legacy, "disable"))
    enabled = api_admin.post(_schedule_url(legacy, "enable"))
    deleted = api_admin.delete(_schedule_url(legacy))

    assert response_json(shown)["in_catalog"] is False
    assert patched.status_code == 400
    assert "not edited" in response_json(patched)["task"][0]
    assert (disabled.status_code, response_json(disabled)["enabled"]) == (200, False)
    assert enabled.status_code == 400
    assert (
        "which is outside the catalog: it can be disabled or deleted, not enabled"
        in (response_json(enabled)["task"][0])
    )
    assert deleted.status_code == 204


def test_it_shows_the_overlap_policy_as_saved_and_as_the_next_run_follows_it(api_admin):
    make_schedule(name="napper", task="scheduler.sleep", params={"seconds": 1})

    (row,) = response_json(api_admin.get("/api/schedules/"))["results"]

    assert row["in_catalog"] is True
    assert row["overlap"] == "default"
    assert row["overlap_effective"] == load_catalog().get("scheduler.sleep").overlap.value
