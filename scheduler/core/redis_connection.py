"""The one Redis client of a process, and the key names this project writes."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    # One pool per process; redis-py resets the pool in a forked child by itself.
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )


def redis_key(name: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}{name}"


def describe_redis_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
