"""A channel kind of the tests' own, registered by dotted path as a deployment would add one:
it records what it is handed, or fails as its settings say."""

from __future__ import annotations

from typing import Any

from scheduler.core.channel_kinds import ChannelConfigError, DeliveryFailed, Notification

SENT: list[tuple[dict[str, Any], Notification]] = []
PATH = "tests.alert_kinds.RecordingChannel"


class RecordingChannel:
    label = "Recording (tests)"
    queue = "default"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        unknown = set(config) - {"fail", "tag"}
        if unknown:
            raise ChannelConfigError(sorted(unknown)[0], "unknown setting")
        if config.get("fail") not in (None, "retry", "refuse"):
            raise ChannelConfigError("fail", "retry or refuse")
        return dict(config)

    def send(self, config: dict[str, Any], notification: Notification) -> int | None:
        if config.get("fail") == "retry":
            raise DeliveryFailed("receiver answered 500", retryable=True, response_code=500)
        if config.get("fail") == "refuse":
            raise DeliveryFailed("receiver answered 404", retryable=False, response_code=404)
        SENT.append((config, notification))
        return 200
