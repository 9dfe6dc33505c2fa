"""The webhook and Slack alert channel kinds against a real HTTP(S) server on 127.0.0.1: what
they post, the signature, which failures are worth another attempt, and the settings they take."""

from __future__ import annotations

import json
import socket
from datetime import datetime

import pytest

from scheduler.core.channel_kinds import ChannelConfigError, DeliveryFailed, Notification
from scheduler.core.signing import SignatureError, signature_check
from scheduler.system.channels import SlackChannel, WebhookChannel, slack_payload

NOTIFICATION = Notification(
    kind="down",
    subject="[DOWN] nightly report failed",
    message="nightly report failed 3 times.\nLast error: <disk> full & read-only",
    channel="ops hook",
    incident={"id": 7, "url": "https://scheduler.example.com/incidents/7/"},
)
SIGNATURE = "X-Scheduler-Signature"


@pytest.fixture
def alerts_key(settings):
    settings.ALERTS_WEBHOOK_SECRET = "the-alerts-key"
    return settings.ALERTS_WEBHOOK_SECRET


def _closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


# --- webhook -------------------------------------------------------------------------------------


def test_it_posts_the_notification_signed_with_the_alerts_key(receiver, alerts_key):
    receiver.status = 204

    status = WebhookChannel().send({"url": receiver.url}, NOTIFICATION)

    assert status == 204
    [(headers, body)] = receiver.received
    assert headers["Content-Type"] == "application/json"
    sent = json.loads(body)
    assert datetime.fromisoformat(sent.pop("sent_at")).tzinfo is not None
    assert sent == NOTIFICATION.as_json()
    signature_check(alerts_key, body, headers[SIGNATURE])
    with pytest.raises(SignatureError, match="wrong signature"):
        signature_check("another key", body, headers[SIGNATURE])


def test_a_channel_signs_with_the_key_its_environment_variable_holds(
    receiver, alerts_key, monkeypatch
):
    monkeypatch.setenv("OPS_HOOK_KEY", "the-channels-own-key")
    config = WebhookChannel().validate({"url": receiver.url, "secret_env": "OPS_HOOK_KEY"})

    WebhookChannel().send(config, NOTIFICATION)

    [(headers, body)] = receiver.received
    signature_check("the-channels-own-key", body, headers[SIGNATURE])
    with pytest.raises(SignatureError):
        signature_check(alerts_key, body, headers[SIGNATURE])


def test_a_missing_environment_variable_fails_for_good_naming_it(receiver, alerts_key, monkeypatch):
    monkeypatch.delenv("OPS_HOOK_KEY", raising=False)

    with pytest.raises(DeliveryFailed) as caught:
        WebhookChannel().send({"url": receiver.url, "secret_env": "OPS_HOOK_KEY"}, NOTIFICATION)

    assert caught.value.retryable is False
    assert "OPS_HOOK_KEY" in str(caught.value)
    assert receiver.received == []  # not posted unsigned instead


def test_without_any_key_the_body_goes_unsigned(receiver, settings):
    settings.ALERTS_WEBHOOK_SECRET = ""

    assert WebhookChannel().send({"url": receiver.url}, NOTIFICATION) == 200

    [(headers, _)] = receiver.received
    assert SIGNATURE not in headers


@pytest.mark.parametrize("status", [500, 502, 503, 408, 425, 429])
def test_an_overloaded_receiver_is_a_retryable_failure_with_its_code(receiver, status):
    receiver.status = status
    receiver.answer = b"<html><h1>Service Unavailable</h1></html>"

    with pytest.raises(DeliveryFailed) as caught:
        WebhookChannel().send({"url": receiver.url}, NOTIFICATION)

    assert caught.value.retryable is True
    assert caught.value.response_code == status
    assert str(status) in str(caught.value)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_a_refusing_receiver_fails_for_good_with_its_code(receiver, status):
    receiver.status = status
    receiver.answer = b"Not Found"

    with pytest.raises(DeliveryFailed) as caught:
        WebhookChannel().send({"url": receiver.url}, NOTIFICATION)

    assert caught.value.retryable is False
    assert caught.value.response_code == status


def test_an_unreachable_receiver_is_a_retryable_failure_without_a_code():
    url = f"http://127.0.0.1:{_closed_port()}/hook"

    with pytest.raises(DeliveryFailed) as caught:
        WebhookChannel().send({"url": url}, NOTIFICATION)

    assert caught.value.retryable is True
    assert caught.value.response_code is None
    assert "unreachable" in str(caught.value)


def test_a_receiver_slower_than_the_timeout_is_a_retryable_failure(receiver):
    receiver.delay = 1.5
    config = WebhookChannel().validate({"url": receiver.url, "timeout": 1})

    with pytest.raises(DeliveryFailed) as caught:
        WebhookChannel().send(config, NOTIFICATION)

    assert caught.value.retryable is True
    assert "timed out" in str(caught.value)


def test_webhook_settings_are_cleaned():
    config = {"url": " https://hooks.example.com/a?b=c ", "secret_env": "KEY_2", "timeout": 5}

    assert WebhookChannel().validate(config) == {
        "url": "https://hooks.example.com/a?b=c",
        "secret_env": "KEY_2",
        "timeout": 5.0,
    }
    assert WebhookChannel().validate({"url": "http://10.0.0.5:8080/", "secret_env": ""}) == {
        "url": "http://10.0.0.5:8080/"
    }


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({}, "url", "required"),
        ({"url": ""}, "url", "required"),
        ({"url": 42}, "url", "required"),
        ({"url": "ftp://example.com/hook"}, "url", "not 'ftp'"),
        ({"url": "file:///etc/passwd"}, "url", "not 'file'"),
        ({"url": "example.com/hook"}, "url", "not 'none'"),
        ({"url": "https://"}, "url", "no host"),
        ({"url": "https:///path"}, "url", "no host"),
        ({"url": "http://[::1/hook"}, "url", "malformed"),
        ({"url": "http://example.com:99999/"}, "url", "malformed"),
        ({"url": "http://example.com/a b"}, "url", "spaces"),
        ({"url": "https://example.com/" + "a" * 2000}, "url", "longer than"),
        ({"url": "https://example.com", "secret_env": "1KEY"}, "secret_env", "environment"),
        ({"url": "https://example.com", "secret_env": "MY-KEY"}, "secret_env", "environment"),
        ({"url": "https://example.com", "secret_env": "$KEY"}, "secret_env", "environment"),
        ({"url": "https://example.com", "secret_env": 7}, "secret_env", "environment"),
        ({"url": "https://example.com", "timeout": 0}, "timeout", "between 1 and 20"),
        ({"url": "https://example.com", "timeout": 21}, "timeout", "between 1 and 20"),
        ({"url": "https://example.com", "timeout": "10"}, "timeout", "number"),
        ({"url": "https://example.com", "timeout": True}, "timeout", "number"),
        ({"url": "https://example.com", "secret": "inline"}, "secret", "unknown setting"),
    ],
)
def test_webhook_refuses_bad_settings_naming_the_field(config, field, words):
    with pytest.raises(ChannelConfigError) as caught:
        WebhookChannel().validate(config)

    assert caught.value.field == field
    assert words in caught.value.message


# --- Slack ---------------------------------------------------------------------------------------


def test_it_posts_slacks_incoming_webhook_json_over_https(tls_receiver, alerts_key):
    config = SlackChannel().validate({"url": tls_receiver.url})

    assert SlackChannel().send(config, NOTIFICATION) == 200

    [(headers, body)] = tls_receiver.received
    assert SIGNATURE not in headers  # Slack checks none: its URL is the secret
    assert json.loads(body) == slack_payload(NOTIFICATION)


def test_the_slack_message_is_the_subject_and_a_section_of_the_message():
    payload = slack_payload(NOTIFICATION)

    assert payload["text"] == NOTIFICATION.subject
    section, link = payload["blocks"]
    assert section["type"] == "section"
    assert section["text"] == {
        "type": "mrkdwn",
        "text": "nightly report failed 3 times.\nLast error: &lt;disk&gt; full &amp; read-only",
    }
    assert link["elements"][0]["text"] == (
        "<https://scheduler.example.com/incidents/7/|Open the incident>"
    )


def test_a_slack_test_message_without_an_incident_has_no_link():
    payload = slack_payload(Notification("test", "Test of ops", "", "ops"))

    assert payload["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Test of ops"}}
    ]


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (429, True), (404, False)])
def test_slack_failures_are_retryable_as_the_webhooks_are(tls_receiver, status, retryable):
    tls_receiver.status = status
    tls_receiver.answer = b"no_service"

    with pytest.raises(DeliveryFailed) as caught:
        SlackChannel().send({"url": tls_receiver.url}, NOTIFICATION)

    assert caught.value.retryable is retryable
    assert caught.value.response_code == status


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"url": "http://hooks.slack.com/services/T/B/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({}, "url"),
        ({"url": "https://hooks.slack.com/services/T/B/x", "channel": "#ops"}, "channel"),
    ],
)
def test_slack_refuses_bad_settings_naming_the_field(config, field):
    with pytest.raises(ChannelConfigError) as caught:
        SlackChannel().validate(config)

    assert caught.value.field == field
