"""The agents' REST API: sessions, messages, runs and inbound webhooks, with their permissions and
their answers to bad input (all JSON).

With CELERY_ENABLED the views queue after commit: in these (non-transaction) tests on_commit
callbacks never run unless captured, so nothing reaches the broker.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from agents import services
from agents.models import Agent, Mention, Message, Post, Session
from agents.signatures import sign
from scheduler.models import TaskEvent
from tests.clients import api_client, response_json
from tests.factories import user_with

pytestmark = pytest.mark.django_db

SECRET = "inbound-secret-for-tests"

# --- Helpers -------------------------------------------------------------------------------------


def _agent(name: str = "Helper", **fields: Any) -> Agent:
    agent = services.agent_create(name=name, **fields)
    Agent.objects.filter(pk=agent.pk).update(webhook_secret=SECRET)
    agent.webhook_secret = SECRET
    return agent


def _session(agent: Agent | None = None, **fields: Any) -> Session:
    return services.session_open(agent=agent or _agent(), **fields)


@pytest.fixture
def celery_on(settings: Any) -> None:
    settings.CELERY_ENABLED = True


@pytest.fixture
def celery_off(settings: Any) -> None:
    settings.CELERY_ENABLED = False


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


def _inbound(
    slug: str, payload: Any, *, secret: str = SECRET, raw: bytes | None = None, **headers: Any
) -> Any:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers.setdefault("HTTP_X_AGENT_SIGNATURE", sign(secret, body))
    return APIClient().post(
        f"/api/inbound/{slug}/", data=body, content_type="application/json", **headers
    )


def _message(**fields: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "conversation": "chat-42",
        "message_id": "1001",
        "text": "Hello there",
        "channel": "telegram",
        **fields,
    }


def _counts() -> tuple[int, int, int]:
    return Session.objects.count(), Message.objects.count(), Mention.objects.count()


# --- Authentication and permissions --------------------------------------------------------------


def test_it_answers_401_json_to_anonymous_callers_on_every_endpoint():
    agent = _agent()
    session = _session(agent)

    for method, path, body in _endpoints(agent, session):
        response = _call(APIClient(), method, path, body)

        assert response.status_code == 401, (method, path, response.content)
        assert "credentials were not provided" in response_json(response)["detail"]
    assert Message.objects.count() == 0


def test_it_answers_403_json_to_users_who_are_not_staff():
    agent = _agent()
    session = _session(agent)
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
    agent = _agent()
    session = _session(agent)
    client = api_client(user_with())  # staff, no permissions: may read only

    fill = {"agent": agent.slug, "session": session.pk}
    body = {key: value.format(**fill) for key, value in body.items()}
    response = _call(client, method, path.format(**fill), body)

    assert response.status_code == 403, response.content
    assert permission in response_json(response)["detail"]
    assert Session.objects.count() == 1
    assert Message.objects.count() == 0


def test_it_lets_staff_read_without_any_permission():
    session = _session()
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
    agent = _agent()
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
    session = _session()
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
    session = _session()
    client = api_client(user_with(superuser=True), enforce_csrf_checks=True)

    response = client.post(f"/api/sessions/{session.pk}/messages/", {"text": "hi"}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response_json(response)["detail"]
    assert Message.objects.count() == 0


# --- Sessions ------------------------------------------------------------------------------------


def test_it_opens_a_web_session_for_the_caller(api_admin):
    agent = _agent()

    response = api_admin.post("/api/sessions/", {"agent": agent.slug}, format="json")

    body = response_json(response)
    assert response.status_code == 201, body
    session = Session.objects.get()
    assert body["id"] == session.pk
    assert body["agent"] == agent.slug
    assert body["channel"] == "web"
    assert body["external_id"] == ""
    assert body["status"] == "open"
    assert body["summary"] == ""
    assert body["last_message_at"] is None
    assert body["messages_url"].endswith(f"/api/sessions/{session.pk}/messages/")
    assert body["chat_url"].endswith(f"/agents/sessions/{session.pk}/")
    assert response["Location"] == body["url"]
    assert session.user is not None
    assert session.user.is_superuser


def test_it_answers_the_same_session_for_the_same_external_conversation(api_admin):
    agent = _agent()
    body = {"agent": agent.slug, "channel": "telegram", "external_id": "chat-7"}

    first = response_json(api_admin.post("/api/sessions/", body, format="json"))
    again = response_json(api_admin.post("/api/sessions/", body, format="json"))

    assert first["id"] == again["id"]
    assert first["channel"] == "telegram"
    assert first["external_id"] == "chat-7"
    assert Session.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"agent": "nobody"}, "agent", "no agent with the slug 'nobody'"),
        ({"agent": "{agent}", "channel": "fax"}, "channel", "unknown channel 'fax'"),
        ({"agent": "{agent}", "channel": "telegram"}, "external_id", "external id"),
        ({"agent": 5}, "agent", "must be a string, not int"),
        ({"agent": "{agent}", "channel": ["web"]}, "channel", "must be a string, not list"),
        ({"agent": "{agent}", "external_id": {"x": 1}}, "external_id", "not dict"),
        ({}, "agent", "required"),
        ({"agent": "{agent}", "colour": "blue"}, "colour", "not a field"),
    ],
)
def test_it_names_the_field_of_a_bad_session_request(api_admin, body, field, words):
    agent = _agent()
    body = {
        key: value.format(agent=agent.slug) if isinstance(value, str) else value
        for key, value in body.items()
    }

    response = api_admin.post("/api/sessions/", body, format="json")

    errors = response_json(response)
    assert response.status_code == 400, errors
    assert words in " ".join(errors[field])
    assert Session.objects.count() == 0


def test_it_refuses_a_session_with_a_paused_agent(api_admin):
    agent = _agent(is_active=False)

    response = api_admin.post("/api/sessions/", {"agent": agent.slug}, format="json")

    assert response.status_code == 400
    assert "paused" in response_json(response)["agent"][0]
    assert Session.objects.count() == 0


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"'])
def test_it_answers_malformed_or_non_object_bodies_with_a_400_on_body(api_admin, raw):
    response = api_admin.post("/api/sessions/", raw, content_type="application/json")

    assert response.status_code == 400
    assert set(response_json(response)) == {"body"}


def test_it_lists_sessions_filtered_by_agent(api_admin):
    first, second = _agent("First"), _agent("Second")
    mine = _session(first)
    _session(second)

    response = api_admin.get(f"/api/sessions/?agent={first.slug}")

    body = response_json(response)
    assert response.status_code == 200
    assert body["count"] == 1
    assert [row["id"] for row in body["results"]] == [mine.pk]
    assert response_json(api_admin.get("/api/sessions/?status=closed"))["count"] == 0
    assert "status" in response_json(api_admin.get("/api/sessions/?status=asleep"))


def test_it_shows_one_session(api_admin):
    session = _session()

    body = response_json(api_admin.get(f"/api/sessions/{session.pk}/"))

    assert body["id"] == session.pk
    assert body["url"].endswith(f"/api/sessions/{session.pk}/")


@pytest.mark.parametrize(
    "path",
    [
        "/api/sessions/999999/",
        "/api/sessions/999999/messages/",
        "/api/sessions/99999999999999999999999/messages/",
        "/api/sessions/abc/messages/",
    ],
)
def test_it_answers_404_json_for_an_unknown_session(api_admin, path):
    get = api_admin.get(path)
    post = api_admin.post(path, {"text": "hi"}, format="json")

    assert get.status_code == 404
    assert post.status_code in (404, 405)
    assert response_json(get)["detail"]
    assert response_json(post)["detail"]


# --- Messages ------------------------------------------------------------------------------------


def test_it_queues_a_message_for_a_worker_and_answers_202(
    api_admin, celery_on, django_capture_on_commit_callbacks
):
    session = _session()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_admin.post(
            f"/api/sessions/{session.pk}/messages/", {"text": "Hello"}, format="json"
        )

    body = response_json(response)
    assert response.status_code == 202, body
    assert body["queued"] is True
    assert body["task_id"]
    assert body["trace_id"]
    assert body["url"].endswith(f"/api/tasks/{body['task_id']}/")
    assert len(callbacks) == 1  # the task, sent once the request's writes are committed
    assert Message.objects.count() == 0  # the worker stores it


def test_it_sends_the_queued_task_with_the_session_and_a_scoped_idempotency_key(
    api_admin, celery_on, django_capture_on_commit_callbacks, monkeypatch
):
    from agents import tasks

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        tasks.process_message, "apply_async", lambda **options: sent.append(options)
    )
    session = _session()

    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post(
            f"/api/sessions/{session.pk}/messages/",
            {"text": "Hello", "message_id": "m-1", "source": "app"},
            format="json",
        )

    body = response_json(response)
    assert len(sent) == 1
    assert sent[0]["task_id"] == body["task_id"]
    assert sent[0]["kwargs"]["session_id"] == session.pk
    assert sent[0]["kwargs"]["text"] == "Hello"
    assert sent[0]["kwargs"]["idempotency_key"] == f"app:{session.pk}:m-1"
    assert sent[0]["headers"] == {"scheduler_object": f"session:{session.pk}"}


def test_it_answers_at_once_without_celery(api_admin, celery_off):
    session = _session()

    response = api_admin.post(
        f"/api/sessions/{session.pk}/messages/", {"text": "Hello"}, format="json"
    )

    body = response_json(response)
    assert response.status_code == 200, body
    assert body["queued"] is False
    assert body["task_id"] is None
    assert body["duplicate"] is False
    assert body["message"]["role"] == "user"
    assert body["message"]["content"] == "Hello"
    assert body["reply"]["role"] == "assistant"
    assert body["reply"]["content"]
    assert body["reply"]["reply_to"] == body["message"]["id"]
    assert list(Message.objects.values_list("role", flat=True)) == ["user", "assistant"]
    # Both reach the chat page live.
    events = TaskEvent.objects.filter(type="session.message", object_id=str(session.pk))
    assert events.count() == 2


def test_it_stores_and_answers_a_message_delivered_twice_once(api_admin, celery_off):
    session = _session()
    url = f"/api/sessions/{session.pk}/messages/"

    first = response_json(
        api_admin.post(url, {"text": "Hello", "message_id": "abc"}, format="json")
    )
    again = response_json(
        api_admin.post(url, {"text": "Hello", "message_id": "abc"}, format="json")
    )

    assert again["duplicate"] is True
    assert again["message"]["id"] == first["message"]["id"]
    assert again["reply"]["id"] == first["reply"]["id"]
    assert Message.objects.filter(role="user").count() == 1
    assert Message.objects.filter(role="assistant").count() == 1


def test_it_keeps_the_same_message_id_of_two_sessions_apart(api_admin, celery_off):
    agent = _agent()
    one, other = _session(agent), _session(agent)

    for session in (one, other):
        response = api_admin.post(
            f"/api/sessions/{session.pk}/messages/",
            {"text": "Hello", "message_id": "1"},
            format="json",
        )
        assert response_json(response)["duplicate"] is False

    assert Message.objects.filter(session=one).count() == 2
    assert Message.objects.filter(session=other).count() == 2


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"text": ""}, "text", "needs some text"),
        ({"text": "   "}, "text", "needs some text"),
        ({"text": "x" * 11}, "text", "at most 10 characters"),
        ({"text": 5}, "text", "must be a string, not int"),
        ({"text": None}, "text", "null"),
        ({}, "text", "required"),
        ({"text": "hi", "message_id": ["a"]}, "message_id", "not list"),
        ({"text": "hi", "source": "a:b"}, "source", "letters, digits"),
        ({"text": "hi", "tone": "warm"}, "tone", "not a field"),
    ],
)
def test_it_names_the_field_of_a_bad_message(api_admin, celery_off, settings, body, field, words):
    settings.AGENT_MESSAGE_MAX_LENGTH = 10
    session = _session()

    response = api_admin.post(f"/api/sessions/{session.pk}/messages/", body, format="json")

    errors = response_json(response)
    assert response.status_code == 400, errors
    assert words in " ".join(errors[field])
    assert Message.objects.count() == 0


def test_it_refuses_a_message_to_a_closed_session(api_admin, celery_off):
    session = _session()
    Session.objects.filter(pk=session.pk).update(status=Session.Status.CLOSED)

    response = api_admin.post(
        f"/api/sessions/{session.pk}/messages/", {"text": "hi"}, format="json"
    )

    assert response.status_code == 400
    assert "closed" in response_json(response)["session"][0]
    assert Message.objects.count() == 0


def test_it_lists_messages_oldest_first_in_pages(api_admin, celery_off):
    session = _session()
    for text in ("one", "two"):
        services.message_answer(
            message=services.message_receive(session=session, content=text).message
        )

    first = response_json(api_admin.get(f"/api/sessions/{session.pk}/messages/?page_size=3"))
    second = response_json(api_admin.get(first["next"]))

    assert first["count"] == 4
    assert len(first["results"]) == 3
    assert second["next"] is None
    assert first["results"][0]["content"] == "one"
    assert [m["role"] for m in first["results"] + second["results"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert first["results"][2]["content"] == "two"
    assert set(first["results"][0]) == {
        "id",
        "session",
        "role",
        "content",
        "created_at",
        "task_id",
        "prompt_tokens",
        "completion_tokens",
        "reply_to",
    }


# --- Runs ----------------------------------------------------------------------------------------


def test_it_queues_a_post_run_with_the_agent_from_the_url(
    api_admin, celery_on, django_capture_on_commit_callbacks
):
    agent = _agent()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_admin.post(
            f"/api/agents/{agent.slug}/run/",
            {"action": "post", "params": {"topic": "weather"}},
            format="json",
        )

    body = response_json(response)
    assert response.status_code == 202, body
    assert body["status"] == "queued"
    assert body["url"].endswith(f"/api/tasks/{body['task_id']}/")
    assert len(callbacks) == 1


def test_it_runs_the_post_in_the_caller_without_celery(
    api_admin, celery_off, django_capture_on_commit_callbacks
):
    agent = _agent()

    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post(
            f"/api/agents/{agent.slug}/run/",
            {"action": "post", "params": {"topic": "weather"}},
            format="json",
        )

    assert response.status_code == 202
    post = Post.objects.get()
    assert post.agent == agent
    assert post.topic == "weather"
    assert post.task_id == response_json(response)["task_id"]


def test_it_queues_a_reply_run_with_its_defaults(
    api_admin, celery_on, django_capture_on_commit_callbacks
):
    agent = _agent()

    with django_capture_on_commit_callbacks(execute=False):
        response = api_admin.post(
            f"/api/agents/{agent.slug}/run/", {"action": "reply"}, format="json"
        )

    assert response.status_code == 202, response.content


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"action": "post", "params": {}}, "params", "topic: Field required"),
        ({"action": "post", "params": {"topic": ""}}, "params", "topic"),
        ({"action": "reply", "params": {"time_value": "soon"}}, "params", "time_value"),
        ({"action": "reply", "params": {"time_unit": "weeks"}}, "params", "time_unit"),
        ({"action": "post", "params": {"topic": "t", "mood": 1}}, "params", "mood"),
        ({"action": "post", "params": ["topic"]}, "params", "JSON object, not list"),
        ({"action": "post", "params": {"topic": "t", "agent": "other"}}, "params", "in the URL"),
        ({"action": "dance"}, "action", "not a valid choice"),
        ({}, "action", "required"),
        ({"action": "post", "queue": "llm"}, "queue", "not a field"),
    ],
)
def test_it_names_the_field_of_a_bad_run(api_admin, celery_on, body, field, words):
    agent = _agent()

    response = api_admin.post(f"/api/agents/{agent.slug}/run/", body, format="json")

    errors = response_json(response)
    assert response.status_code == 400, errors
    assert words in " ".join(errors[field])
    assert not TaskEvent.objects.filter(type="task.queued").exists()


def test_it_accepts_the_agent_in_params_when_it_is_the_urls(
    api_admin, celery_on, django_capture_on_commit_callbacks
):
    agent = _agent()

    with django_capture_on_commit_callbacks(execute=False):
        response = api_admin.post(
            f"/api/agents/{agent.slug}/run/",
            {"action": "post", "params": {"topic": "t", "agent": agent.slug}},
            format="json",
        )

    assert response.status_code == 202


def test_it_answers_404_to_a_run_of_an_unknown_agent(api_admin):
    response = api_admin.post("/api/agents/nobody/run/", {"action": "post"}, format="json")

    assert response.status_code == 404
    assert "nobody" in response_json(response)["detail"]


def test_it_refuses_to_run_a_paused_agent(api_admin):
    agent = _agent(is_active=False)

    response = api_admin.post(
        f"/api/agents/{agent.slug}/run/",
        {"action": "post", "params": {"topic": "t"}},
        format="json",
    )

    assert response.status_code == 400
    assert "paused" in response_json(response)["agent"][0]


# --- Inbound webhooks ----------------------------------------------------------------------------


def test_it_opens_the_conversations_session_and_queues_a_signed_message(
    celery_on, django_capture_on_commit_callbacks, monkeypatch
):
    from agents import tasks

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        tasks.process_message, "apply_async", lambda **options: sent.append(options)
    )
    agent = _agent()

    with django_capture_on_commit_callbacks(execute=True):
        response = _inbound(agent.slug, _message())

    body = response_json(response)
    assert response.status_code == 202, body
    session = Session.objects.get()
    assert (session.agent, session.channel, session.external_id) == (agent, "telegram", "chat-42")
    assert body["session"] == session.pk
    assert body["queued"] is True
    assert body["url"].endswith(f"/api/tasks/{body['task_id']}/")
    assert len(sent) == 1
    assert sent[0]["task_id"] == body["task_id"]
    assert sent[0]["kwargs"]["text"] == "Hello there"
    assert sent[0]["kwargs"]["idempotency_key"] == f"telegram:{session.pk}:1001"


def test_it_stores_and_answers_a_signed_message_without_celery(celery_off):
    agent = _agent()

    response = _inbound(agent.slug, _message())

    body = response_json(response)
    assert response.status_code == 200, body
    assert body["reply"]["role"] == "assistant"
    assert Message.objects.filter(session__external_id="chat-42").count() == 2


def test_it_answers_a_message_delivered_twice_once(celery_off):
    agent = _agent()

    first = _inbound(agent.slug, _message())
    again = _inbound(agent.slug, _message())

    assert (first.status_code, again.status_code) == (200, 200)
    assert response_json(again)["duplicate"] is True
    assert Session.objects.count() == 1
    assert Message.objects.filter(role="user").count() == 1
    assert Message.objects.filter(role="assistant").count() == 1


def test_it_accepts_a_message_delivered_twice_when_queued(
    celery_on, django_capture_on_commit_callbacks
):
    agent = _agent()

    with django_capture_on_commit_callbacks(execute=False):
        first = _inbound(agent.slug, _message())
        again = _inbound(agent.slug, _message())

    assert (first.status_code, again.status_code) == (202, 202)
    assert Session.objects.count() == 1


def test_it_reuses_the_session_of_a_conversation_and_keeps_chats_apart(celery_off):
    agent = _agent()

    _inbound(agent.slug, _message(message_id="1", text="first"))
    _inbound(agent.slug, _message(message_id="2", text="second"))
    # Message ids are per chat: message 1 of another chat is another message.
    _inbound(agent.slug, _message(conversation=99, message_id=1, text="elsewhere"))

    sessions = {s.external_id: s for s in Session.objects.all()}
    assert set(sessions) == {"chat-42", "99"}
    assert sessions["chat-42"].messages.filter(role="user").count() == 2
    assert sessions["99"].messages.filter(role="user").count() == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_AGENT_SIGNATURE": ""},
        {"HTTP_X_AGENT_SIGNATURE": "sha256=" + "0" * 64},
        {"HTTP_X_AGENT_SIGNATURE": sign("another secret", json.dumps(_message()).encode())},
        {"HTTP_X_AGENT_SIGNATURE": sign(SECRET, b"another body")},
        {"HTTP_X_AGENT_SIGNATURE": "garbage"},
    ],
)
def test_it_refuses_a_message_without_the_right_signature_and_stores_nothing(
    celery_on, django_capture_on_commit_callbacks, headers
):
    agent = _agent()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message = _inbound(agent.slug, _message(), **headers)
        mention = _inbound(
            agent.slug, {"type": "mention", "mention_id": "m", "text": "x"}, **headers
        )

    assert (message.status_code, mention.status_code) == (403, 403)
    assert "X-Agent-Signature" in response_json(message)["detail"]
    assert _counts() == (0, 0, 0)
    assert callbacks == []


def test_it_refuses_an_unsigned_request_even_with_a_staff_session(celery_on):
    agent = _agent()
    client = api_client(user_with(superuser=True))

    response = client.post(f"/api/inbound/{agent.slug}/", _message(), format="json")

    assert response.status_code == 403
    assert _counts() == (0, 0, 0)


def test_it_checks_the_signature_before_the_json(celery_on):
    agent = _agent()

    response = _inbound(agent.slug, None, raw=b"{not json", HTTP_X_AGENT_SIGNATURE="sha256=0")

    assert response.status_code == 403


def test_it_needs_no_csrf_token_for_a_signed_delivery(
    celery_on, django_capture_on_commit_callbacks
):
    agent = _agent()
    body = json.dumps(_message()).encode()
    client = api_client(user_with(superuser=True), enforce_csrf_checks=True)

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            f"/api/inbound/{agent.slug}/",
            data=body,
            content_type="application/json",
            HTTP_X_AGENT_SIGNATURE=sign(SECRET, body),
        )

    assert response.status_code == 202, response.content


def test_it_answers_404_json_for_an_unknown_agent():
    response = _inbound("nobody", _message())

    assert response.status_code == 404
    assert "nobody" in response_json(response)["detail"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2, 3]", "body"),
        (b"\xff\xfe", "body"),
        (json.dumps({"type": "letter"}).encode(), "type"),
        (json.dumps({"text": "no type"}).encode(), "type"),
        (json.dumps(_message(conversation=None)).encode(), "conversation"),
        (json.dumps(_message(conversation=["x"])).encode(), "conversation"),
        (json.dumps(_message(message_id="")).encode(), "message_id"),
        (json.dumps(_message(text="   ")).encode(), "text"),
        (json.dumps(_message(text=12)).encode(), "text"),
        (json.dumps(_message(channel="web")).encode(), "channel"),
        (json.dumps(_message(extra=True)).encode(), "extra"),
        (json.dumps({"type": "mention", "text": "x"}).encode(), "mention_id"),
        (json.dumps({"type": "mention", "mention_id": "m", "text": ""}).encode(), "text"),
    ],
)
def test_it_names_what_is_wrong_with_a_signed_delivery_and_stores_nothing(celery_off, raw, field):
    agent = _agent()

    response = _inbound(agent.slug, None, raw=raw)

    errors = response_json(response)
    assert response.status_code == 400, errors
    assert field in errors
    assert _counts() == (0, 0, 0)


def test_it_refuses_a_message_longer_than_allowed_before_opening_a_session(celery_off, settings):
    settings.AGENT_MESSAGE_MAX_LENGTH = 5
    agent = _agent()

    response = _inbound(agent.slug, _message(text="far too long"))

    assert response.status_code == 400
    assert "at most 5" in response_json(response)["text"][0]
    assert _counts() == (0, 0, 0)


def test_it_refuses_a_message_to_a_paused_agent(celery_off):
    agent = _agent(is_active=False)

    response = _inbound(agent.slug, _message())

    assert response.status_code == 400
    assert "paused" in response_json(response)["agent"][0]
    assert _counts() == (0, 0, 0)


def test_it_stores_a_mention_once():
    agent = _agent()
    mention = {"type": "mention", "mention_id": "m-1", "author": "@ann", "text": "Hi @helper"}

    first = _inbound(agent.slug, mention)
    again = _inbound(agent.slug, mention)

    assert (first.status_code, again.status_code) == (201, 200)
    assert response_json(first)["created"] is True
    assert response_json(again)["created"] is False
    stored = Mention.objects.get()
    assert (stored.agent, stored.external_id, stored.author, stored.content, stored.source) == (
        agent,
        "m-1",
        "@ann",
        "Hi @helper",
        "webhook",
    )
    assert response_json(first)["mention"]["id"] == stored.pk


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
