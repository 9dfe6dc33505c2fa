"""The messages kombu leaves in Redis, for tests that check a run was queued without a worker."""

from __future__ import annotations

import json
from typing import Any, cast

from django.conf import settings

from scheduler.core.redis_connection import get_redis


def take_queued(queue: str, task_id: str) -> dict[str, Any] | None:
    """The message of `task_id` in the Redis list of `queue`, removed so no worker runs it."""
    client = get_redis()
    key = f"{settings.REDIS_KEY_PREFIX}{queue}"
    for raw in cast("list[bytes]", client.lrange(key, 0, -1)):
        message: dict[str, Any] = json.loads(raw)
        if message["headers"]["id"] == task_id:
            client.lrem(key, 1, raw.decode())
            return message
    return None
