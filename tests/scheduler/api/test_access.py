"""The REST API's doors: who may call each endpoint (anonymous callers, users who are not staff,
staff with and without the permission a write needs), token and session authentication with
CSRF, and the per-user throttle (all answers JSON).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django_celery_beat.models import PeriodicTask
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from scheduler.models import AuditEntry, TaskEvent
from tests.clients import api_client, response_json
from tests.factories import make_schedule, user_with
from tests.scheduler.api.helpers import TASK_ID, schedule_url

pytestmark = pytest.mark.django_db


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
        ("post", f"/api/schedules/{schedule_id}/pause/", {"note": "x"}),
        ("post", f"/api/schedules/{schedule_id}/resume/", None),
        ("post", f"/api/schedules/{schedule_id}/pause-on-failure/", {"after": 3}),
        ("get", "/api/dead-letters/", None),
        ("get", "/api/dead-letters/1/", None),
        ("post", "/api/dead-letters/1/requeue/", None),
        ("post", "/api/dead-letters/1/discard/", None),
        ("get", "/api/queues/", None),
        ("post", "/api/queues/default/pause/", {"note": "x"}),
        ("post", "/api/queues/default/resume/", None),
        ("post", "/api/queues/default/purge/", {"confirm": "default"}),
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
        ("post", "{schedule}pause/", {"note": "x"}, "django_celery_beat.change_periodictask"),
        ("post", "{schedule}resume/", None, "django_celery_beat.change_periodictask"),
        (
            "post",
            "{schedule}pause-on-failure/",
            {"after": 3},
            "django_celery_beat.change_periodictask",
        ),
        ("post", "/api/dead-letters/1/requeue/", None, "scheduler.run_tasks"),
        ("post", "/api/dead-letters/1/discard/", None, "scheduler.run_tasks"),
        ("post", "/api/queues/default/pause/", {"note": "x"}, "scheduler.control_workers"),
        ("post", "/api/queues/default/resume/", None, "scheduler.control_workers"),
        ("post", "/api/queues/default/purge/", {"confirm": "default"}, "scheduler.control_workers"),
    ],
)
def test_it_answers_403_to_staff_without_the_permission_a_write_needs(
    method, path, body, permission
):
    periodic_task = make_schedule(name="guarded")
    client = api_client(user_with())  # staff, no permissions: may read only

    response = _call(client, method, path.format(schedule=schedule_url(periodic_task)), body)

    assert response.status_code == 403, response.content
    assert permission in response_json(response)["detail"]
    assert PeriodicTask.objects.get(pk=periodic_task.pk).name == "guarded"
    assert not AuditEntry.objects.exclude(action="created").exists()


def test_it_lets_staff_read_without_any_permission():
    periodic_task = make_schedule()
    client = api_client(user_with())

    for path in ("/api/catalog/", "/api/tasks/", "/api/schedules/", schedule_url(periodic_task)):
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
    assert creator.delete(schedule_url(made)).status_code == 403
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
