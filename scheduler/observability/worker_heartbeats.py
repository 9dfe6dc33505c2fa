"""Which Celery workers are alive: each worker records itself in Redis on every heartbeat."""

from __future__ import annotations

import time
from typing import cast

from config.celery import app
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.protocol import WORKER_QUEUES_KEY, WORKERS_KEY

# Entries older than this are pruned whenever a worker records itself.
_FORGET_AFTER = 24 * 3600


def record_worker_seen(hostname: str, *, at: float | None = None) -> None:
    now = time.time() if at is None else at
    pipe = get_redis().pipeline(transaction=False)
    pipe.zadd(redis_key(WORKERS_KEY), {hostname: now})
    pipe.zremrangebyscore(redis_key(WORKERS_KEY), "-inf", now - _FORGET_AFTER)
    pipe.execute()


def record_worker_queues(hostname: str, queues: list[str]) -> None:
    """The queues `hostname` consumes (the "no worker on a queue" alert reads them)."""
    get_redis().hset(redis_key(WORKER_QUEUES_KEY), hostname, ",".join(sorted(queues)))


def worker_queues() -> dict[str, set[str]]:
    """Hostname -> the queues it said it consumes when it started."""
    raw = cast("dict[bytes, bytes]", get_redis().hgetall(redis_key(WORKER_QUEUES_KEY)))
    return {
        name.decode(): set(filter(None, value.decode().split(","))) for name, value in raw.items()
    }


def forget_worker(hostname: str) -> None:
    pipe = get_redis().pipeline(transaction=False)
    pipe.zrem(redis_key(WORKERS_KEY), hostname)
    pipe.hdel(redis_key(WORKER_QUEUES_KEY), hostname)
    pipe.execute()


def workers_seen_within(seconds: float) -> dict[str, float]:
    """Hostnames of workers heard from in the last `seconds`, with the time last heard."""
    rows = cast(
        "list[tuple[bytes, float]]",
        get_redis().zrangebyscore(
            redis_key(WORKERS_KEY), time.time() - seconds, "+inf", withscores=True
        ),
    )
    return {name.decode(): score for name, score in rows}


def ping_workers(*, timeout: float = 1.0) -> list[str]:
    """Ask every worker to answer a broadcast ping; record and return those that did."""
    replies = app.control.ping(timeout=timeout) or []
    hostnames = [hostname for reply in replies for hostname in reply]
    for hostname in hostnames:
        record_worker_seen(hostname)
    return hostnames
