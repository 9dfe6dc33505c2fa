"""The built-in kinds of alert channel: email, a signed webhook, Slack, a Django signal.

Each implements scheduler/core/channel_kinds.py's ChannelKind and is named by dotted path in
SCHEDULER_ALERT_CHANNEL_KINDS. `validate` is what the admin, the CLI and the API save through:
it refuses unknown settings by name and returns the cleaned config. `send` validates again (a
config may have been written around it) and turns every failure into DeliveryFailed; HTTP and
mail go through what `scheduler.send_notification` uses (notifications.py), so retryable means
the same thing for both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from scheduler.core.channel_kinds import (
    ChannelConfigError,
    DeliveryFailed,
    Notification,
    alert_notification,
)
from scheduler.core.plain_text import shortened
from scheduler.core.signing import signature_header
from scheduler.system.notifications import (
    SIGNATURE_HEADER,
    NotificationError,
    NotificationRejected,
    email_send,
    webhook_post,
)

DEFAULT_TIMEOUT = 10.0
TIMEOUT_RANGE = (1.0, 20.0)  # under the webhooks queue soft time limit (25 s)
URL_MAX_LENGTH = 2000
# A POSIX-style variable name, as a shell or a process manager can set it.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Slack's limit on a section's text.
_SLACK_SECTION_LENGTH = 3000


def _known_keys(config: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ChannelConfigError("config", f"must be an object, not {type(config).__name__}")
    for key in config:
        if key not in allowed:
            choices = ", ".join(allowed) if allowed else "none"
            raise ChannelConfigError(str(key), f"unknown setting (allowed: {choices})")
    return config


def _url(value: Any, *, schemes: tuple[str, ...]) -> str:
    wanted = " or ".join(schemes)
    if not isinstance(value, str) or not value.strip():
        raise ChannelConfigError("url", f"required: an {wanted} URL")
    url = value.strip()
    if len(url) > URL_MAX_LENGTH:
        raise ChannelConfigError("url", f"longer than {URL_MAX_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ChannelConfigError("url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (reading it checks it: a port out of range raises)
    except ValueError as exc:
        raise ChannelConfigError("url", f"malformed URL: {exc}") from exc
    if parts.scheme.lower() not in schemes:
        raise ChannelConfigError("url", f"must be an {wanted} URL, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise ChannelConfigError("url", "has no host")
    return url


def _timeout(value: Any) -> float:
    low, high = TIMEOUT_RANGE
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChannelConfigError("timeout", "must be a number of seconds")
    if not low <= value <= high:
        raise ChannelConfigError("timeout", f"must be between {low:g} and {high:g} seconds")
    return float(value)


def _checked(
    validate: Callable[[dict[str, Any]], dict[str, Any]], config: dict[str, Any]
) -> dict[str, Any]:
    # A stored config is validated when saved; one that no longer is (edited in the database, a
    # kind made stricter) fails its delivery for good, saying what to fix.
    try:
        return validate(config)
    except ChannelConfigError as exc:
        raise DeliveryFailed(f"the channel's settings are invalid: {exc}", retryable=False) from exc


def _posted(
    url: str,
    payload: dict[str, Any],
    *,
    timeout: float,
    sign: Callable[[bytes], dict[str, str]] | None = None,
) -> int:
    try:
        return webhook_post(url=url, payload=payload, timeout=timeout, sign=sign)
    except NotificationRejected as exc:
        raise DeliveryFailed(str(exc), retryable=False, response_code=exc.status) from exc
    except NotificationError as exc:
        raise DeliveryFailed(str(exc), retryable=True, response_code=exc.status) from exc


class EmailChannel:
    """Mail to a list of addresses, sent from DEFAULT_FROM_EMAIL by Django's mail backend."""

    label = "Email"
    # An SMTP server may take EMAIL_TIMEOUT (20 s): the webhooks queue's limits leave room.
    queue = "webhooks"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        config = _known_keys(config, ("to",))
        value = config.get("to")
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ChannelConfigError("to", "a list of email addresses (or one comma-separated)")
        addresses: list[str] = []
        for item in (item.strip() for item in value):
            if not item:
                continue
            try:
                validate_email(item)
            except ValidationError as exc:
                raise ChannelConfigError("to", f"{item!r} is not an email address") from exc
            if item not in addresses:
                addresses.append(item)
        if not addresses:
            raise ChannelConfigError("to", "at least one email address")
        return {"to": addresses}

    def send(self, config: dict[str, Any], notification: Notification) -> int | None:
        recipients = _checked(self.validate, config)["to"]
        try:
            email_send(
                subject=notification.subject, message=notification.message, recipients=recipients
            )
        except NotificationError as exc:
            raise DeliveryFailed(str(exc), retryable=True) from exc
        return None


class WebhookChannel:
    """A JSON POST of the notification, signed (X-Scheduler-Signature) when there is a key."""

    label = "Webhook"
    queue = "webhooks"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        config = _known_keys(config, ("url", "secret_env", "timeout"))
        cleaned: dict[str, Any] = {"url": _url(config.get("url"), schemes=("http", "https"))}
        secret_env = config.get("secret_env")
        if secret_env not in (None, ""):
            if not isinstance(secret_env, str) or not _ENV_NAME.fullmatch(secret_env):
                raise ChannelConfigError(
                    "secret_env",
                    "the name of an environment variable (letters, digits and _, not first a "
                    "digit)",
                )
            cleaned["secret_env"] = secret_env
        if config.get("timeout") is not None:
            cleaned["timeout"] = _timeout(config["timeout"])
        return cleaned

    def send(self, config: dict[str, Any], notification: Notification) -> int | None:
        config = _checked(self.validate, config)
        key = self._key(config)
        payload = {**notification.as_json(), "sent_at": timezone.now().isoformat()}
        return _posted(
            config["url"],
            payload,
            timeout=config.get("timeout", DEFAULT_TIMEOUT),
            sign=(lambda body: {SIGNATURE_HEADER: signature_header(key, body)}) if key else None,
        )

    @staticmethod
    def _key(config: dict[str, Any]) -> str:
        name = config.get("secret_env")
        if name is None:
            return str(settings.ALERTS_WEBHOOK_SECRET or "")
        key = os.environ.get(name, "")
        if not key:
            # Posting unsigned to a receiver that expects a signature would only be refused.
            raise DeliveryFailed(
                f"the environment variable {name} (the channel's secret_env) is not set",
                retryable=False,
            )
        return key


class SlackChannel:
    """A message posted to a Slack incoming webhook (or anything taking its JSON)."""

    label = "Slack"
    queue = "webhooks"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        config = _known_keys(config, ("url",))
        return {"url": _url(config.get("url"), schemes=("https",))}

    def send(self, config: dict[str, Any], notification: Notification) -> int | None:
        config = _checked(self.validate, config)
        return _posted(config["url"], slack_payload(notification), timeout=DEFAULT_TIMEOUT)


def _slack_escaped(text: str) -> str:
    # The three characters Slack's mrkdwn gives a meaning to (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notification: Notification) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: the subject as the text, the message in a section."""
    text = _slack_escaped(notification.message.strip() or notification.subject)
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": shortened(text, _SLACK_SECTION_LENGTH)},
        }
    ]
    url = notification.incident.get("url")
    if url:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{url}|Open the incident>"}],
            }
        )
    return {"text": _slack_escaped(notification.subject), "blocks": blocks}


class SignalChannel:
    """The `alert_notification` Django signal, for code in this project to act on."""

    label = "Signal"
    queue = "default"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        _known_keys(config, ())
        return {}

    def send(self, config: dict[str, Any], notification: Notification) -> int | None:
        _checked(self.validate, config)
        # send_robust: every receiver gets it even when one fails, and we can name who failed.
        answers = alert_notification.send_robust(
            sender=SignalChannel, notification=notification, channel=notification.channel
        )
        failed = [
            f"{_name(receiver)}: {answer!r}"
            for receiver, answer in answers
            if isinstance(answer, Exception)
        ]
        if failed:
            raise DeliveryFailed("receivers failed: " + "; ".join(failed), retryable=False)
        return None


def _name(receiver: Any) -> str:
    module = getattr(receiver, "__module__", None) or "?"
    name = getattr(receiver, "__qualname__", None) or type(receiver).__qualname__
    return f"{module}.{name}"
