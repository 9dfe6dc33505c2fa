"""Broker reads: how many messages wait in each of our queues."""

from __future__ import annotations

from django.conf import settings
from kombu.transport.redis import PRIORITY_STEPS

from config.queues import QUEUES
from scheduler.core.redis_connection import get_redis

# kombu's separator between a queue's name and a priority step, in the names of its lists.
_KOMBU_PRIORITY_SEP = "\x06\x16"


def queue_depths() -> dict[str, int]:
    """Messages waiting in each of our queues on the broker.

    kombu's Redis transport keeps a queue as lists named `<global_keyprefix><queue>`, plus one
    list per priority step above 0 (`<queue>\\x06\\x16<step>`); the depth is the sum of them.
    Assumes the broker is the Redis of REDIS_URL (CELERY_BROKER_URL defaults to it).
    """
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    prefix = options.get("global_keyprefix", settings.REDIS_KEY_PREFIX)
    steps = options.get("priority_steps", PRIORITY_STEPS)
    names = list(QUEUES)
    pipe = get_redis().pipeline(transaction=False)
    for name in names:
        for step in steps:
            pipe.llen(f"{prefix}{name}{_KOMBU_PRIORITY_SEP}{step}" if step else f"{prefix}{name}")
    sizes = iter(pipe.execute())
    return {name: sum(int(next(sizes)) for _ in steps) for name in names}
