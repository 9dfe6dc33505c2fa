"""The broker behind one adapter: how many messages wait in each of our queues, emptying one;
and which queues staff paused (QueuePause rows: every worker leaves them alone)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from kombu.transport.redis import PRIORITY_STEPS

from config.celery import app
from config.queues import QUEUES
from scheduler.core.redis_connection import get_redis
from scheduler.models import QueuePause

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


def queue_messages_purge(name: str) -> int:
    """Remove every message waiting in queue `name`; how many were removed.

    Through kombu's channel, which empties every priority list of the queue in one MULTI (a
    message a worker holds already is not waiting: it is not removed, and runs).
    """
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel  # kombu's virtual channel (its stub has less)
        return int(channel.queue_purge(name) or 0)


def paused_queues() -> dict[str, QueuePause]:
    """Queue name -> its pause, for every queue staff paused (a handful of rows at most)."""
    return {pause.queue: pause for pause in QueuePause.objects.select_related("paused_by")}
