"""The built-in alert channel kinds: email through a real SMTP server, the Django signal, what
every kind's settings accept. The webhook kinds: test_channels_http.py."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from config.queues import QUEUES
from scheduler.core.channel_kinds import (
    ChannelConfigError,
    ChannelKind,
    DeliveryFailed,
    Notification,
    alert_notification,
)
from scheduler.system.channels import EmailChannel, SignalChannel, SlackChannel, WebhookChannel

NOTIFICATION = Notification(
    kind="down",
    subject="[DOWN] nightly report failed",
    message="nightly report failed 3 times since 02:00.\nLast error: disk full",
    channel="ops mail",
    incident={"id": 7, "url": "https://scheduler.example.com/incidents/7/"},
)


def test_every_configured_kind_loads_and_has_a_label_and_a_queue():
    # Annotated, so that mypy checks each built-in kind against the protocol.
    built_in: list[ChannelKind] = [
        EmailChannel(),
        WebhookChannel(),
        SlackChannel(),
        SignalChannel(),
    ]
    configured = django_settings.SCHEDULER_ALERT_CHANNEL_KINDS

    assert {type(kind) for kind in built_in} == {
        import_string(path) for path in configured.values()
    }
    for kind in built_in:
        assert kind.label
        assert kind.queue in QUEUES


@pytest.mark.parametrize("kind", [EmailChannel(), SignalChannel()])
@pytest.mark.parametrize("config", [None, [], "to=a@example.com"])
def test_a_config_that_is_not_an_object_is_refused(kind, config):
    with pytest.raises(ChannelConfigError) as caught:
        kind.validate(config)

    assert caught.value.field == "config"


# --- email ---------------------------------------------------------------------------------------


def test_it_mails_the_notification_through_a_real_smtp_server(mail_receiver):
    config = EmailChannel().validate({"to": ["ops@example.com", "lead@example.com"]})

    assert EmailChannel().send(config, NOTIFICATION) is None

    [mail] = mail_receiver.received
    assert mail.subject == NOTIFICATION.subject
    assert mail.recipients == ["ops@example.com", "lead@example.com"]
    assert mail.sender == django_settings.DEFAULT_FROM_EMAIL
    assert mail.message["To"] == "ops@example.com, lead@example.com"
    assert "Last error: disk full" in mail.text


def test_a_refusing_smtp_server_is_a_retryable_failure(mail_receiver):
    mail_receiver.answer = "451 4.3.0 try again later"

    with pytest.raises(DeliveryFailed) as caught:
        EmailChannel().send({"to": ["ops@example.com"]}, NOTIFICATION)

    assert caught.value.retryable is True
    assert caught.value.response_code is None
    assert "ops@example.com" in str(caught.value)
    assert mail_receiver.received == []


def test_an_smtp_server_that_is_down_is_a_retryable_failure(mail_receiver, settings):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        settings.EMAIL_PORT = free.getsockname()[1]  # closed again before the send

    with pytest.raises(DeliveryFailed) as caught:
        EmailChannel().send({"to": ["ops@example.com"]}, NOTIFICATION)

    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("to", "cleaned"),
    [
        (["ops@example.com"], ["ops@example.com"]),
        ("ops@example.com, lead@example.com", ["ops@example.com", "lead@example.com"]),
        (" ops@example.com ,, ops@example.com ", ["ops@example.com"]),
        (["a@example.com", " b@example.com", ""], ["a@example.com", "b@example.com"]),
    ],
)
def test_email_takes_a_list_or_a_comma_separated_string(to, cleaned):
    assert EmailChannel().validate({"to": to}) == {"to": cleaned}


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({}, "to", "list of email addresses"),
        ({"to": []}, "to", "at least one"),
        ({"to": " , "}, "to", "at least one"),
        ({"to": ["ops@example.com", "not an address"]}, "to", "'not an address'"),
        ({"to": "ops@example.com, ops@"}, "to", "'ops@'"),
        ({"to": [1, 2]}, "to", "list of email addresses"),
        ({"to": {"ops": "ops@example.com"}}, "to", "list of email addresses"),
        ({"to": ["ops@example.com"], "cc": ["x@example.com"]}, "cc", "unknown setting"),
    ],
)
def test_email_refuses_bad_settings_naming_the_field(config, field, words):
    with pytest.raises(ChannelConfigError) as caught:
        EmailChannel().validate(config)

    assert caught.value.field == field
    assert words in caught.value.message


def test_email_fails_for_good_on_settings_that_no_longer_validate(mail_receiver):
    with pytest.raises(DeliveryFailed) as caught:
        EmailChannel().send({"to": ["nobody"]}, NOTIFICATION)

    assert caught.value.retryable is False
    assert "to: 'nobody'" in str(caught.value)
    assert mail_receiver.received == []


# --- the Django signal ---------------------------------------------------------------------------


@pytest.fixture
def connected():
    """Connects receivers to alert_notification for one test."""
    receivers: list[Any] = []

    def connect(receiver: Any) -> None:
        alert_notification.connect(receiver, weak=False)
        receivers.append(receiver)

    yield connect
    for receiver in receivers:
        alert_notification.disconnect(receiver)


def test_a_connected_receiver_gets_the_notification(connected):
    got: list[dict[str, Any]] = []
    connected(lambda **kwargs: got.append(kwargs))

    assert SignalChannel().send({}, NOTIFICATION) is None

    [call] = got
    assert call["sender"] is SignalChannel
    assert call["notification"] == NOTIFICATION
    assert call["channel"] == "ops mail"


def _broken_receiver(**kwargs: Any) -> None:
    raise RuntimeError("pager service is down")


def test_a_receiver_that_raises_fails_the_delivery_for_good_naming_it(connected):
    got: list[Notification] = []
    connected(_broken_receiver)
    connected(lambda notification, **kwargs: got.append(notification))

    with pytest.raises(DeliveryFailed) as caught:
        SignalChannel().send({}, NOTIFICATION)

    assert caught.value.retryable is False
    assert "test_channels._broken_receiver" in str(caught.value)
    assert "pager service is down" in str(caught.value)
    assert got == [NOTIFICATION]  # the others still got it


def test_the_signal_kind_takes_no_settings():
    assert SignalChannel().validate({}) == {}
    with pytest.raises(ChannelConfigError) as caught:
        SignalChannel().validate({"receiver": "mine"})

    assert caught.value.field == "receiver"
    assert "unknown setting (allowed: none)" in str(caught.value)
