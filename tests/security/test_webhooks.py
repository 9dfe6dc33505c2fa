"""Webhooks are signature-checked both ways.

Inbound (`POST /api/inbound/<slug>/`): tests/agents/test_api_inbound.py already refuses an empty,
zeroed, garbage, wrong-secret or other-body signature (403, nothing stored, nothing queued), an
unsigned request with a staff session, and checks the signature before the JSON. Added here: the
secret of another agent, an agent without a secret, a body changed after signing, other schemes.
The scheme has no timestamp, so there is no stale signature to refuse: a replayed message is
answered once by its message id (test_api_inbound.py), and our outbound bodies carry `sent_at`
for receivers.

Outbound: `agents.post`'s delivery is verified in tests/agents/test_conversations.py; here
`agents.send_response` and `scheduler.send_notification`, whose webhooks were not signed at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from django.test import Client

from agents import services, tasks
from agents.models import Agent, Mention, Message, Session
from agents.signatures import HEADER, sign, signature_valid
from scheduler.system.notifications import SIGNATURE_HEADER, webhook_signature
from scheduler.system.tasks import send_notification
from tests.clients import response_json

pytestmark = [pytest.mark.security, pytest.mark.django_db]

SECRET = "the-agents-own-secret"


def _agent(slug: str = "helper", secret: str = SECRET, **fields: Any) -> Agent:
    agent = services.agent_create(name=slug.title(), slug=slug, **fields)
    Agent.objects.filter(pk=agent.pk).update(webhook_secret=secret)
    agent.webhook_secret = secret
    return agent


def _counts() -> tuple[int, int, int]:
    return Session.objects.count(), Message.objects.count(), Mention.objects.count()


MESSAGE = {"type": "message", "conversation": "c-1", "message_id": "1", "text": "hello"}


def _deliver(slug: str, body: bytes, signature: str | None) -> Any:
    headers = {} if signature is None else {HEADER: signature}
    return Client().post(
        f"/api/inbound/{slug}/", body, content_type="application/json", headers=headers
    )


# --- Inbound -------------------------------------------------------------------------------------


def _signatures(body: bytes) -> dict[str, str | None]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256)
    return {
        "missing": None,
        "another agent's secret": sign("the-other-agents-secret", body),
        "a body changed after signing": sign(SECRET, body.replace(b"hello", b"HELLO")),
        "sha1 of the right secret": "sha1=" + hmac.new(SECRET.encode(), body, "sha1").hexdigest(),
        "the digest without its scheme": digest.hexdigest(),
        "the digest in base64": "sha256=" + base64.b64encode(digest.digest()).decode(),
    }


@pytest.mark.parametrize("case", list(_signatures(b"")))
def test_it_refuses_a_delivery_without_the_agents_own_signature_and_stores_nothing(
    case, django_capture_on_commit_callbacks
):
    _agent()
    _agent("other", secret="the-other-agents-secret")
    body = json.dumps(MESSAGE).encode()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _deliver("helper", body, _signatures(body)[case])

    assert response.status_code == 403
    assert "X-Agent-Signature" in response_json(response)["detail"]
    assert _counts() == (0, 0, 0)
    assert callbacks == []


def test_an_agent_without_a_secret_accepts_no_delivery_at_all(django_capture_on_commit_callbacks):
    _agent(secret="")
    body = json.dumps(MESSAGE).encode()
    empty_key = "sha256=" + hmac.new(b"", body, hashlib.sha256).hexdigest()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _deliver("helper", body, empty_key)

    assert response.status_code == 403
    assert _counts() == (0, 0, 0)
    assert callbacks == []


def test_it_takes_a_delivery_signed_with_the_agents_secret(django_capture_on_commit_callbacks):
    _agent()
    body = json.dumps(MESSAGE).encode()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _deliver("helper", body, sign(SECRET, body))

    assert response.status_code == 202, response.content
    assert _counts() == (1, 0, 0)  # the session; the message is stored by the queued task
    assert len(callbacks) == 1


# --- Outbound ------------------------------------------------------------------------------------


def test_a_reply_is_delivered_with_a_signature_of_its_exact_body(receiver):
    agent = _agent(webhook_url=receiver.url)
    session = services.session_open(agent=agent, channel="webhook", external_id="conv-1")
    reply = services.message_answer(
        message=services.message_receive(session=session, content="hi").message
    )

    result = tasks.send_response.apply(kwargs={"message_id": reply.pk}).get()

    assert result["delivered"] is True
    [(headers, body)] = receiver.received
    assert signature_valid(SECRET, body, headers[HEADER])
    assert not signature_valid(SECRET, body + b" ", headers[HEADER])
    assert not signature_valid("another secret", body, headers[HEADER])


def test_a_notification_webhook_is_signed_with_the_configured_secret(receiver, settings):
    settings.NOTIFICATION_WEBHOOK_SECRET = "notification-secret"

    send_notification(subject="Backup", message="done", webhook_url=receiver.url)

    [(headers, body)] = receiver.received
    expected = "sha256=" + hmac.new(b"notification-secret", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected
    assert webhook_signature("notification-secret", body) == expected
    assert json.loads(body)["sent_at"]  # signed with the body: a receiver can refuse old ones
    tampered = body.replace(b"done", b"gone")
    assert webhook_signature("notification-secret", tampered) != headers[SIGNATURE_HEADER]


def test_a_notification_webhook_is_unsigned_without_a_secret(receiver, settings):
    settings.NOTIFICATION_WEBHOOK_SECRET = ""

    send_notification(subject="Backup", message="done", webhook_url=receiver.url)

    [(headers, _)] = receiver.received
    assert SIGNATURE_HEADER not in headers
