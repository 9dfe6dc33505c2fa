"""Translate our Redis URLs into the spellings each client library expects."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit


def redis_url_for_celery(url: str) -> str:
    """Return `url` in kombu's spelling.

    redis-py and channels-redis spell a unix socket `unix:///path?db=N`; kombu wants
    `redis+socket:///path?virtual_host=N`. TCP URLs are the same for both.
    """
    parts = urlsplit(url)
    if parts.scheme != "unix":
        return url
    query = parse_qs(parts.query)
    db = query.pop("db", ["0"])[0]
    params = {key: values[0] for key, values in query.items()}
    params["virtual_host"] = db
    return f"redis+socket://{parts.path}?{urlencode(params)}"
