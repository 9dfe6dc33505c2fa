"""Webhooks are signature-checked both ways.

Inbound (`POST /api/inbound/<slug>/`): tests/agents/test_api_inbound.py already refuses an empty,
zeroed, garbage, wrong-secret or other-body signature (403, nothing stored, nothing queued), an
unsigned request with a staff session, a signature six minutes old, and checks the signature
before the JSON. Added here: the secret of another agent, an agent without a secret, a body or a
time changed after signing, a signature from the future, other schemes (GitHub's `sha256=`, the
one used before). A replay within the five minutes is answered once by its message id
(test_api_inbound.py).

Outbound: `agents.post`'s delivery is verified in tests/agents/test_conversations.py; here
`agents.send_response` and `scheduler.send_notification`, whose webhooks were not signed at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from django.test import Client

from agents import services, tasks
from agents.models import Agent, Mention, Message, Session
from agents.signatures import HEADER, SignatureError, sign, signature_verify
from scheduler.core import signature_check
from scheduler.system.notifications import SIGNATURE_HEADER
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
    now = int(time.time())
    signed = hmac.new(SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256)
    later = sign(SECRET, body, now=now).replace(f"t={now},", f"t={now + 60},")
    return {
        "missing": None,
        "another agent's secret": sign("the-other-agents-secret", body),
        "a body changed after signing": sign(SECRET, body.replace(b"hello", b"HELLO")),
        "a time changed after signing": later,
        "signed ten minutes ahead": sign(SECRET, body, now=now + 600),
        "signed an hour ago": sign(SECRET, body, now=now - 3600),
        "sha1 of the right secret": "sha1=" + hmac.new(SECRET.encode(), body, "sha1").hexdigest(),
        "the old scheme (sha256= of the body)": "sha256=" + digest.hexdigest(),
        "the digest without its scheme": digest.hexdigest(),
        "the digest in base64": f"t={now},v1=" + base64.b64encode(signed.digest()).decode(),
        "the digest without its time": "v1=" + signed.hexdigest(),
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
    now = int(time.time())
    empty_key = f"t={now},v1=" + hmac.new(b"", f"{now}.".encode() + body, "sha256").hexdigest()

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
    signature_verify(SECRET, body, headers[HEADER])
    for secret, sent in [(SECRET, body + b" "), ("another secret", body)]:
        with pytest.raises(SignatureError, match="wrong signature"):
            signature_verify(secret, sent, headers[HEADER])


def test_a_notification_webhook_is_signed_with_the_configured_secret(receiver, settings):
    settings.NOTIFICATION_WEBHOOK_SECRET = "notification-secret"

    send_notification(subject="Backup", message="done", webhook_url=receiver.url)

    [(headers, body)] = receiver.received
    header = headers[SIGNATURE_HEADER]
    timestamp = int(header.removeprefix("t=").partition(",")[0])
    assert abs(timestamp - time.time()) < 60
    expected = hmac.new(b"notification-secret", f"{timestamp}.".encode() + body, "sha256")
    assert header == f"t={timestamp},v1={expected.hexdigest()}"
    signature_check("notification-secret", body, header)
    with pytest.raises(SignatureError, match="wrong signature"):
        signature_check("notification-secret", body.replace(b"done", b"gone"), header)
    with pytest.raises(SignatureError, match="too old"):
        signature_check("notification-secret", body, header, now=timestamp + 301)


def test_a_notification_webhook_is_unsigned_without_a_secret(receiver, settings):
    settings.NOTIFICATION_WEBHOOK_SECRET = ""

    send_notification(subject="Backup", message="done", webhook_url=receiver.url)

    [(headers, _)] = receiver.received
    assert SIGNATURE_HEADER not in headers
