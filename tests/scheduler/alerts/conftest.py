from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.services.incidents import LAST_SUCCESS_KEY, SINCE_KEY, STREAKS_KEY, rules_reload
from tests import alert_kinds


@pytest.fixture(autouse=True)
def recording_channels(settings: Any) -> Iterator[list[Any]]:
    """Deliveries run in the test (no broker), to the tests' recording kind."""
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


__all__ = ["settings"]
