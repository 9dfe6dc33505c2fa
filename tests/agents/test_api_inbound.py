"""The agents' inbound webhooks (`POST /api/inbound/{slug}/`): a signed message opens or reuses its
conversation's session and is queued or answered once, a mention is stored once, and a delivery
without the right signature, or with bad JSON, stores nothing.

With CELERY_ENABLED the views queue after commit: in these (non-transaction) tests on_commit
callbacks never run unless captured, so nothing reaches the broker.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import time_machine

from agents.models import Mention, Message, Session
from agents.signatures import sign
from tests.agents.helpers import SECRET, api_agent, inbound_message, post_inbound, stored_counts
from tests.clients import api_client, response_json
from tests.factories import user_with

pytestmark = pytest.mark.django_db


# --- Inbound webhooks ----------------------------------------------------------------------------


def test_it_opens_the_conversations_session_and_queues_a_signed_message(
    celery_on, django_capture_on_commit_callbacks, monkeypatch
):
    from agents import tasks

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        tasks.process_message, "apply_async", lambda **options: sent.append(options)
    )
    agent = api_agent()

    with django_capture_on_commit_callbacks(execute=True):
        response = post_inbound(agent.slug, inbound_message())

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
    agent = api_agent()

    response = post_inbound(agent.slug, inbound_message())

    body = response_json(response)
    assert response.status_code == 200, body
    assert body["reply"]["role"] == "assistant"
    assert Message.objects.filter(session__external_id="chat-42").count() == 2


def test_it_answers_a_message_delivered_twice_once(celery_off):
    agent = api_agent()

    first = post_inbound(agent.slug, inbound_message())
    again = post_inbound(agent.slug, inbound_message())

    assert (first.status_code, again.status_code) == (200, 200)
    assert response_json(again)["duplicate"] is True
    assert Session.objects.count() == 1
    assert Message.objects.filter(role="user").count() == 1
    assert Message.objects.filter(role="assistant").count() == 1


def test_it_accepts_a_message_delivered_twice_when_queued(
    celery_on, django_capture_on_commit_callbacks
):
    agent = api_agent()

    with django_capture_on_commit_callbacks(execute=False):
        first = post_inbound(agent.slug, inbound_message())
        again = post_inbound(agent.slug, inbound_message())

    assert (first.status_code, again.status_code) == (202, 202)
    assert Session.objects.count() == 1


def test_it_reuses_the_session_of_a_conversation_and_keeps_chats_apart(celery_off):
    agent = api_agent()

    post_inbound(agent.slug, inbound_message(message_id="1", text="first"))
    post_inbound(agent.slug, inbound_message(message_id="2", text="second"))
    # Message ids are per chat: message 1 of another chat is another message.
    post_inbound(agent.slug, inbound_message(conversation=99, message_id=1, text="elsewhere"))

    sessions = {s.external_id: s for s in Session.objects.all()}
    assert set(sessions) == {"chat-42", "99"}
    assert sessions["chat-42"].messages.filter(role="user").count() == 2
    assert sessions["99"].messages.filter(role="user").count() == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_AGENT_SIGNATURE": ""},
        {"HTTP_X_AGENT_SIGNATURE": "sha256=" + "0" * 64},
        {"HTTP_X_AGENT_SIGNATURE": f"t={int(time.time())},v1=" + "0" * 64},
        {"HTTP_X_AGENT_SIGNATURE": sign("another secret", json.dumps(inbound_message()).encode())},
        {"HTTP_X_AGENT_SIGNATURE": sign(SECRET, b"another body")},
        {"HTTP_X_AGENT_SIGNATURE": "garbage"},
    ],
)
def test_it_refuses_a_message_without_the_right_signature_and_stores_nothing(
    celery_on, django_capture_on_commit_callbacks, headers
):
    agent = api_agent()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message = post_inbound(agent.slug, inbound_message(), **headers)
        mention = post_inbound(
            agent.slug, {"type": "mention", "mention_id": "m", "text": "x"}, **headers
        )

    assert (message.status_code, mention.status_code) == (403, 403)
    assert "X-Agent-Signature" in response_json(message)["detail"]
    assert stored_counts() == (0, 0, 0)
    assert callbacks == []


def test_it_refuses_a_correctly_signed_delivery_six_minutes_old_and_stores_nothing(
    celery_on, django_capture_on_commit_callbacks
):
    agent = api_agent()
    body = json.dumps(inbound_message()).encode()
    now = time.time()
    captured = sign(SECRET, body, now=now - 6 * 60)  # a replay of a real delivery

    with (
        time_machine.travel(now, tick=False),
        django_capture_on_commit_callbacks(execute=False) as callbacks,
    ):
        response = post_inbound(agent.slug, None, raw=body, HTTP_X_AGENT_SIGNATURE=captured)

    assert response.status_code == 403
    detail = response_json(response)["detail"]
    assert "X-Agent-Signature" in detail
    assert "too old: signed 360 s ago" in detail
    assert stored_counts() == (0, 0, 0)
    assert callbacks == []


def test_it_takes_a_delivery_signed_a_few_minutes_ago(
    celery_on, django_capture_on_commit_callbacks
):
    agent = api_agent()
    body = json.dumps(inbound_message()).encode()

    with django_capture_on_commit_callbacks(execute=False):
        response = post_inbound(
            agent.slug,
            None,
            raw=body,
            HTTP_X_AGENT_SIGNATURE=sign(SECRET, body, now=time.time() - 240),
        )

    assert response.status_code == 202, response.content


def test_it_refuses_an_unsigned_request_even_with_a_staff_session(celery_on):
    agent = api_agent()
    client = api_client(user_with(superuser=True))

    response = client.post(f"/api/inbound/{agent.slug}/", inbound_message(), format="json")

    assert response.status_code == 403
    assert stored_counts() == (0, 0, 0)


def test_it_checks_the_signature_before_the_json(celery_on):
    agent = api_agent()

    response = post_inbound(agent.slug, None, raw=b"{not json", HTTP_X_AGENT_SIGNATURE="sha256=0")

    assert response.status_code == 403


def test_it_needs_no_csrf_token_for_a_signed_delivery(
    celery_on, django_capture_on_commit_callbacks
):
    agent = api_agent()
    body = json.dumps(inbound_message()).encode()
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
    response = post_inbound("nobody", inbound_message())

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
        (json.dumps(inbound_message(conversation=None)).encode(), "conversation"),
        (json.dumps(inbound_message(conversation=["x"])).encode(), "conversation"),
        (json.dumps(inbound_message(message_id="")).encode(), "message_id"),
        (json.dumps(inbound_message(text="   ")).encode(), "text"),
        (json.dumps(inbound_message(text=12)).encode(), "text"),
        (json.dumps(inbound_message(channel="web")).encode(), "channel"),
        (json.dumps(inbound_message(extra=True)).encode(), "extra"),
        (json.dumps({"type": "mention", "text": "x"}).encode(), "mention_id"),
        (json.dumps({"type": "mention", "mention_id": "m", "text": ""}).encode(), "text"),
    ],
)
def test_it_names_what_is_wrong_with_a_signed_delivery_and_stores_nothing(celery_off, raw, field):
    agent = api_agent()

    response = post_inbound(agent.slug, None, raw=raw)

    errors = response_json(response)
    assert response.status_code == 400, errors
    assert field in errors
    assert stored_counts() == (0, 0, 0)


def test_it_refuses_a_message_longer_than_allowed_before_opening_a_session(celery_off, settings):
    settings.AGENT_MESSAGE_MAX_LENGTH = 5
    agent = api_agent()

    response = post_inbound(agent.slug, inbound_message(text="far too long"))

    assert response.status_code == 400
    assert "at most 5" in response_json(response)["text"][0]
    assert stored_counts() == (0, 0, 0)


def test_it_refuses_a_message_to_a_paused_agent(celery_off):
    agent = api_agent(is_active=False)

    response = post_inbound(agent.slug, inbound_message())

    assert response.status_code == 400
    assert "paused" in response_json(response)["agent"][0]
    assert stored_counts() == (0, 0, 0)


def test_it_stores_a_mention_once():
    agent = api_agent()
    mention = {"type": "mention", "mention_id": "m-1", "author": "@ann", "text": "Hi @helper"}

    first = post_inbound(agent.slug, mention)
    again = post_inbound(agent.slug, mention)

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
