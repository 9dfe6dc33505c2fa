"""What the alert API's tests share: channels of the tests' recording kind, delivered in the test
(no broker)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scheduler.services.incidents import rules_reload
from tests import alert_kinds


@pytest.fixture
def recording(settings: Any) -> Iterator[list[Any]]:
    """Deliveries run in the test (no broker), to the tests' recording kind ("record")."""
    settings.CELERY_ENABLED = False
    settings.SCHEDULER_ALERT_CHANNEL_KINDS = {
        **settings.SCHEDULER_ALERT_CHANNEL_KINDS,
        "record": alert_kinds.PATH,
    }
    alert_kinds.SENT.clear()
    rules_reload()
    yield alert_kinds.SENT
    alert_kinds.SENT.clear()
    rules_reload()
