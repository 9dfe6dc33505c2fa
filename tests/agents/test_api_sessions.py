"""The agents' REST API for sessions and their messages: opening a session (the same one for the
same external conversation), listing and showing them, and a message queued for a worker or
answered at once without Celery, delivered twice but stored once, with the answers to bad
input.

With CELERY_ENABLED the views queue after commit: in these (non-transaction) tests on_commit
callbacks never run unless captured, so nothing reaches the broker.
"""

from __future__ import annotations

from typing import Any

import pytest

from agents import services
from agents.models import Message, Session
from scheduler.models import TaskEvent
from tests.agents.helpers import api_agent, api_session
from tests.clients import response_json

pytestmark = pytest.mark.django_db


# --- Sessions ------------------------------------------------------------------------------------


def test_it_opens_a_web_session_for_the_caller(api_admin):
    agent = api_agent()

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
    agent = api_agent()
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
    agent = api_agent()
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
    agent = api_agent(is_active=False)

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
    first, second = api_agent("First"), api_agent("Second")
    mine = api_session(first)
    api_session(second)

    response = api_admin.get(f"/api/sessions/?agent={first.slug}")

    body = response_json(response)
    assert response.status_code == 200
    assert body["count"] == 1
    assert [row["id"] for row in body["results"]] == [mine.pk]
    assert response_json(api_admin.get("/api/sessions/?status=closed"))["count"] == 0
    assert "status" in response_json(api_admin.get("/api/sessions/?status=asleep"))


def test_it_shows_one_session(api_admin):
    session = api_session()

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
    session = api_session()

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
    session = api_session()

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
    session = api_session()

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
    session = api_session()
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
    agent = api_agent()
    one, other = api_session(agent), api_session(agent)

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
    session = api_session()

    response = api_admin.post(f"/api/sessions/{session.pk}/messages/", body, format="json")

    errors = response_json(response)
    assert response.status_code == 400, errors
    assert words in " ".join(errors[field])
    assert Message.objects.count() == 0


def test_it_refuses_a_message_to_a_closed_session(api_admin, celery_off):
    session = api_session()
    Session.objects.filter(pk=session.pk).update(status=Session.Status.CLOSED)

    response = api_admin.post(
        f"/api/sessions/{session.pk}/messages/", {"text": "hi"}, format="json"
    )

    assert response.status_code == 400
    assert "closed" in response_json(response)["session"][0]
    assert Message.objects.count() == 0


def test_it_lists_messages_oldest_first_in_pages(api_admin, celery_off):
    session = api_session()
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
