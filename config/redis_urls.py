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


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """REDIS_SENTINELS ("host:port,host:port,...") as (host, port) pairs; ValueError naming
    what is wrong."""
    sentinels: list[tuple[str, int]] = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host:
            raise ValueError(f"REDIS_SENTINELS: {item!r} is not host:port")
        try:
            number = int(port)
        except ValueError:
            raise ValueError(f"REDIS_SENTINELS: {item!r} has no port number") from None
        if not 0 < number < 65536:
            raise ValueError(f"REDIS_SENTINELS: {item!r} has no port number")
        sentinels.append((host.strip("[]"), number))
    if not sentinels:
        raise ValueError("REDIS_SENTINELS names no sentinel (host:port,host:port,...)")
    return sentinels


def sentinel_broker_url(sentinels: list[tuple[str, int]], *, db: int, password: str) -> str:
    """Kombu's URL for a broker found through sentinels: one `sentinel://` URL per sentinel,
    joined with ';' (it asks them in turn); the master's name is a transport option."""
    secret = f":{password}@" if password else ""
    return ";".join(f"sentinel://{secret}{host}:{port}/{db}" for host, port in sentinels)


def redis_db_and_password(url: str) -> tuple[int, str]:
    """The database number and password a Redis URL names (its host is the sentinels' job)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    path = parts.path.lstrip("/") if parts.scheme in ("redis", "rediss") else ""
    db = query.get("db", [path or "0"])[0]
    try:
        number = int(db)
    except ValueError:
        raise ValueError(f"REDIS_URL: database {db!r} is not a number") from None
    return number, parts.password or ""
