"""The agents' REST API: who may call each endpoint (anonymous callers, users who are not staff,
staff with and without the permission a write needs), token and session authentication with
CSRF, and the endpoints the OpenAPI schema lists (all answers JSON).

With CELERY_ENABLED the views queue after commit: in these (non-transaction) tests on_commit
callbacks never run unless captured, so nothing reaches the broker.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from agents.models import Agent, Message, Session
from tests.agents.helpers import api_agent, api_session
from tests.clients import api_client, response_json
from tests.factories import user_with

pytestmark = pytest.mark.django_db


def _endpoints(agent: Agent, session: Session) -> list[tuple[str, str, Any]]:
    return [
        ("get", "/api/sessions/", None),
        ("post", "/api/sessions/", {"agent": agent.slug}),
        ("get", f"/api/sessions/{session.pk}/", None),
        ("get", f"/api/sessions/{session.pk}/messages/", None),
        ("post", f"/api/sessions/{session.pk}/messages/", {"text": "hi"}),
        ("post", f"/api/agents/{agent.slug}/run/", {"action": "post", "params": {"topic": "x"}}),
    ]


def _call(client: APIClient, method: str, path: str, body: Any) -> Any:
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


# --- Authentication and permissions --------------------------------------------------------------


def test_it_answers_401_json_to_anonymous_callers_on_every_endpoint():
    agent = api_agent()
    session = api_session(agent)

    for method, path, body in _endpoints(agent, session):
        response = _call(APIClient(), method, path, body)

        assert response.status_code == 401, (method, path, response.content)
        assert "credentials were not provided" in response_json(response)["detail"]
    assert Message.objects.count() == 0


def test_it_answers_403_json_to_users_who_are_not_staff():
    agent = api_agent()
    session = api_session(agent)
    client = api_client(user_with(staff=False))

    for method, path, body in _endpoints(agent, session):
        response = _call(client, method, path, body)

        assert response.status_code == 403, (method, path, response.content)
        assert response_json(response)["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body", "permission"),
    [
        ("post", "/api/sessions/", {"agent": "{agent}"}, "agents.add_session"),
        ("post", "/api/sessions/{session}/messages/", {"text": "hi"}, "agents.add_message"),
        ("post", "/api/agents/{agent}/run/", {"action": "post"}, "scheduler.run_tasks"),
    ],
)
def test_it_answers_403_to_staff_without_the_permission_a_write_needs(
    method, path, body, permission
):
    agent = api_agent()
    session = api_session(agent)
    client = api_client(user_with())  # staff, no permissions: may read only

    fill = {"agent": agent.slug, "session": session.pk}
    body = {key: value.format(**fill) for key, value in body.items()}
    response = _call(client, method, path.format(**fill), body)

    assert response.status_code == 403, response.content
    assert permission in response_json(response)["detail"]
    assert Session.objects.count() == 1
    assert Message.objects.count() == 0


def test_it_lets_staff_read_without_any_permission():
    session = api_session()
    client = api_client(user_with())

    for path in (
        "/api/sessions/",
        f"/api/sessions/{session.pk}/",
        f"/api/sessions/{session.pk}/messages/",
    ):
        assert client.get(path).status_code == 200, path


def test_it_lets_staff_write_with_exactly_the_permission_it_needs(
    celery_off, django_capture_on_commit_callbacks
):
    agent = api_agent()
    opener = api_client(user_with("agents.add_session"))
    talker = api_client(user_with("agents.add_message"))
    runner = api_client(user_with("scheduler.run_tasks"))

    opened = opener.post("/api/sessions/", {"agent": agent.slug}, format="json")
    session_id = response_json(opened)["id"]
    said = talker.post(f"/api/sessions/{session_id}/messages/", {"text": "hi"}, format="json")
    with django_capture_on_commit_callbacks(execute=False):
        ran = runner.post(
            f"/api/agents/{agent.slug}/run/",
            {"action": "post", "params": {"topic": "t"}},
            format="json",
        )

    assert (opened.status_code, said.status_code, ran.status_code) == (201, 200, 202)
    # ...and no more than it.
    refused = opener.post(f"/api/sessions/{session_id}/messages/", {"text": "x"}, format="json")
    assert refused.status_code == 403
    assert talker.post("/api/sessions/", {"agent": agent.slug}, format="json").status_code == 403


def test_it_authenticates_with_a_token_and_needs_no_csrf_token_then(celery_off):
    session = api_session()
    token = Token.objects.create(user=user_with(superuser=True))
    client = APIClient(enforce_csrf_checks=True)

    response = client.post(
        f"/api/sessions/{session.pk}/messages/",
        {"text": "hi"},
        format="json",
        HTTP_AUTHORIZATION=f"Token {token.key}",
    )

    assert response.status_code == 200, response.content


def test_it_enforces_csrf_on_session_writes(celery_off):
    session = api_session()
    client = api_client(user_with(superuser=True), enforce_csrf_checks=True)

    response = client.post(f"/api/sessions/{session.pk}/messages/", {"text": "hi"}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response_json(response)["detail"]
    assert Message.objects.count() == 0


# --- Schema --------------------------------------------------------------------------------------


def test_the_openapi_schema_lists_the_agents_endpoints(api_admin):
    response = api_admin.get("/api/schema/?format=json")

    schema = json.loads(response.content)
    paths = {path: set(ops) - {"parameters"} for path, ops in schema["paths"].items()}
    assert paths["/api/sessions/"] == {"get", "post"}
    assert paths["/api/sessions/{session_id}/"] == {"get"}
    assert paths["/api/sessions/{session_id}/messages/"] == {"get", "post"}
    assert paths["/api/agents/{slug}/run/"] == {"post"}
    assert paths["/api/inbound/{slug}/"] == {"post"}
    inbound = schema["paths"]["/api/inbound/{slug}/"]["post"]
    assert "security" not in inbound  # no session, no token: the signature alone
    assert "X-Agent-Signature" in {p["name"] for p in inbound["parameters"]}
