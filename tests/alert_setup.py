"""The alert engine as the interfaces' tests (admin, CLI) use it: deliveries sent in the test
process (no broker) to the recording kind of tests/alert_kinds.py, and an open incident made
as the engine makes one. Test modules import the fixture and apply it to each of their tests:
`pytestmark = pytest.mark.usefixtures("alerting")`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.models import AlertRule, Incident
from scheduler.services.incidents import (
    LAST_SUCCESS_KEY,
    SINCE_KEY,
    STREAKS_KEY,
    Match,
    incident_match,
    rules_reload,
)
from tests import alert_kinds


@pytest.fixture
def alerting(settings: Any) -> Iterator[list[Any]]:
    """What the recording channels were sent, in order."""
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
    get_redis().delete(*(redis_key(k) for k in (STREAKS_KEY, SINCE_KEY, LAST_SUCCESS_KEY)))


def open_incident(
    rule: AlertRule,
    subject: str = "schedule:nightly",
    *,
    title: str = "schedule 'nightly' failed",
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Incident:
    """The open incident of (rule, subject), as a match of the engine opens it."""
    match = Match(rule=rule, subject=subject, title=title, details=details or {"error": "boom"})
    return incident_match(match, now=at)
