"""The one Redis client of a process, and the key names this project writes."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

import redis
from django.conf import settings
from redis.sentinel import Sentinel


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    # One pool per process; redis-py resets the pool in a forked child by itself.
    timeout = settings.REDIS_SOCKET_TIMEOUT
    if settings.REDIS_SENTINELS:
        # The master the sentinels name, asked again after a failover: a connection to the
        # old master fails, and the pool's next connection goes to the one they promoted.
        sentinel = Sentinel(
            settings.REDIS_SENTINELS,
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
        )
        return sentinel.master_for(
            settings.REDIS_SENTINEL_MASTER,
            db=settings.REDIS_DB,
            password=settings.REDIS_PASSWORD or None,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


def redis_key(name: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}{name}"


def describe_redis() -> str:
    """Where this process's Redis is, for messages and logs (no password)."""
    if settings.REDIS_SENTINELS:
        sentinels = ",".join(f"{host}:{port}" for host, port in settings.REDIS_SENTINELS)
        return f"master {settings.REDIS_SENTINEL_MASTER!r} of sentinels {sentinels}"
    return describe_redis_url(settings.REDIS_URL)


def describe_redis_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
