"""What a kind of alert channel is: the interface every kind implements, the notification it
is handed, and the errors it raises. The kinds themselves are found by dotted path
(SCHEDULER_ALERT_CHANNEL_KINDS: name -> "package.module.Class"), so a deployment adds its own
without changing this project: `scheduler.services.alerts.channel_kind(name)` loads them.

A kind is a class with no required constructor arguments:

    class PagerChannel:
        label = "Pager"
        queue = "webhooks"          # the queue its deliveries go through
        def validate(self, config: dict) -> dict: ...   # cleaned config, or ChannelConfigError
        def send(self, config: dict, notification: Notification) -> int | None: ...

`send` returns the receiver's response code (None where there is none, as for email) or raises
DeliveryFailed: retryable for what another attempt may fix (a timeout, a 5xx, an SMTP error),
not for what it will not (a 4xx).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from django.dispatch import Signal

# Sent by the "signal" channel kind: receivers get `notification` (a Notification) and
# `channel` (the channel's name). Connect with `alert_notification.connect(receiver)`.
alert_notification = Signal()


@dataclass(frozen=True)
class Notification:
    """One notification as every channel kind receives it."""

    kind: str  # "down", "repeat", "recovered" or "test"
    subject: str  # one line: "[DOWN] nightly report failed"
    message: str  # plain text, a few lines
    channel: str  # the channel's name
    # The incident as JSON (id, rule, subject, title, opened_at, resolved_at, duration_seconds,
    # match_count, details, url); empty for a test notification.
    incident: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "channel": self.channel,
            "incident": self.incident,
        }


class ChannelConfigError(ValueError):
    """A channel's settings that cannot be used; `field` names the setting."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DeliveryFailed(RuntimeError):
    """A notification that did not arrive. `retryable`: another attempt may succeed."""

    def __init__(
        self, message: str, *, retryable: bool = True, response_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.response_code = response_code


class ChannelKind(Protocol):
    label: str
    queue: str

    def validate(self, config: dict[str, Any]) -> dict[str, Any]: ...

    def send(self, config: dict[str, Any], notification: Notification) -> int | None: ...
