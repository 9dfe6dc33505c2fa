"""Our kombu Redis transport against this run's real Redis: messages go through as with kombu's,
one redis-py client serves every command of a channel, and a channel that dropped its pool
gets a client of the new one."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.conf import settings
from kombu import Connection
from kombu.transport import redis as kombu_redis

from config.redis_urls import redis_url_for_celery
from scheduler.core.broker_transport import RedisTransport

MESSAGES = 30


def _connection(transport: type) -> Connection:
    # The class is set after the URL is read: kombu takes the transport of a redis+socket://
    # URL (this run's embedded Redis) from its prefix, whatever it is given.
    connection = Connection(
        redis_url_for_celery(settings.REDIS_URL),
        transport_options={"global_keyprefix": f"{settings.REDIS_KEY_PREFIX}transport-test:"},
    )
    connection.transport_cls = transport  # type: ignore[assignment]  # a class is taken too
    return connection


@pytest.fixture
def clients_built(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every redis-py client built meanwhile."""
    built: list[Any] = []
    init = redis.Redis.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counting)
    return built


def _round_trips(connection: Connection, queue_name: str) -> list[Any]:
    received = []
    with connection.SimpleQueue(queue_name) as queue:
        for n in range(MESSAGES):
            queue.put({"n": n}, serializer="json")
            message = queue.get(timeout=5)
            received.append(message.payload["n"])
            message.ack()
        queue.clear()
    return received


@pytest.mark.parametrize(
    ("transport", "most_clients"),
    [
        # Ours: the channel's client, its consumer's and the poller's, however many commands.
        (RedisTransport, 5),
        # Kombu's: one per put, get and acknowledgement (the cost this transport removes).
        (kombu_redis.Transport, None),
    ],
)
def test_messages_go_through_and_ours_builds_a_client_per_channel_not_per_command(
    clients_built: list[Any], transport: type, most_clients: int | None
) -> None:
    with _connection(transport) as connection:
        received = _round_trips(connection, f"transport-{transport.__module__}")

    assert received == list(range(MESSAGES))
    if most_clients is None:
        assert len(clients_built) > 2 * MESSAGES
    else:
        assert len(clients_built) <= most_clients


def test_a_channel_that_dropped_its_pool_gets_a_client_of_the_new_pool() -> None:
    with _connection(RedisTransport) as connection:
        channel: Any = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as again:
            assert first is again
            assert first.connection_pool is channel.pool
        # What kombu does after a connection error: the next command builds a new pool.
        channel._disconnect_pools()
        with channel.conn_or_acquire() as after:
            assert after is not first
            assert after.connection_pool is channel.pool
            assert after.ping()
        assert _round_trips(connection, "transport-after-reset") == list(range(MESSAGES))
