"""The REST API's errors: every path under /api/ answers JSON, DEBUG or not (unknown paths and
ids, malformed task ids, methods an endpoint does not have, the API's own failures), and the
index of the API's parts at its root.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from scheduler import selectors
from tests.clients import api_client, response_json
from tests.factories import user_with
from tests.scheduler.api.helpers import TASK_ID

pytestmark = pytest.mark.django_db


# --- Malformed ids, methods an endpoint does not have, the API's own failures --------------------


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
