"""Kombu's Redis transports (plain and Sentinel), with two defects mended.

**One Redis client per channel, not one per command.** Kombu's Redis channel builds a new
redis-py client for nearly every command it sends (`Channel.conn_or_acquire`): every
acknowledgement, every batch of task events, every publish. Building one copies redis-py's
table of ~170 response callbacks into a case-insensitive dict, upper-casing each key
(redis/redis-py#3624), which cost ~0.2 ms on this project's CI machine, four or more times per
task in a worker's main process: more than a tenth of its CPU (benchmarks/pipeline.py). A
client holds no connection of its own (each command takes one from the channel's pool and gives
it back), so one client per pool serves every command; a channel that drops its pool after a
connection error gets a new client with the new pool.

**A Sentinel worker survives closing its old channel.** When the connection breaks (the master
killed, failed over), Celery closes it; closing a Redis channel gives its unacknowledged
messages back to the broker (`restore_unacked_once`), which asks for a connection pool again.
By then kombu has let go of the pool and of the connection's client, so building the pool's
parameters raises AttributeError ('NoneType' object has no attribute 'hostname'), which Celery
does not expect there: the worker stopped with "Unrecoverable error" at the first failover
(tests/cluster/test_sentinel_failover.py; the same defect: celery/kombu#582, #970). Here a
channel remembers the connection's client it was made with (its URLs name the sentinels) and
builds the pool from it when the connection no longer has one; the messages it gives back then
go to the master the sentinels name now.

Settings select them (`CELERY_BROKER_TRANSPORT`) for `redis://` and `sentinel://` brokers. A
unix socket broker (`redis+socket://`, the embedded default) keeps kombu's own transport (kombu
picks the transport of such a URL by its prefix, whatever the setting says), and so does
`rediss://`: kombu turns TLS on by the transport's name.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

# Kombu's own classes, untyped: its stubs leave out the pool methods mended here.
_Channel: Any = kombu_redis.Channel
_Transport: Any = kombu_redis.Transport
_SentinelChannel: Any = kombu_redis.SentinelChannel
_SentinelTransport: Any = kombu_redis.SentinelTransport


class _ReusedClient:
    """Channel mixin: the client for the channel's (synchronous) pool, built once per pool."""

    # (the pool, its client) once a command asked for one.
    _reused: tuple[Any, Any] | None = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the consumer's BRPOP client: kombu keeps it (Channel.client)
            return super()._create_client(asynchronous)  # type: ignore[misc]
        pool = self.pool  # type: ignore[attr-defined]
        reused = self._reused
        if reused is None or reused[0] is not pool:
            reused = self._reused = (pool, super()._create_client(asynchronous))  # type: ignore[misc]
        return reused[1]


class RedisChannel(_ReusedClient, _Channel):
    pass


class RedisTransport(_Transport):
    Channel = RedisChannel


class SentinelChannel(_ReusedClient, _SentinelChannel):
    # The connection's client (its URLs: the sentinels) when this channel last had one.
    _last_client: Any = None

    def _get_pool(self, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport.client is not None or self._last_client is None:
            self._last_client = transport.client
            return super()._get_pool(asynchronous)
        # Closing after the connection let go of its client: the pool is built from the
        # client this channel was made with, and the connection is left as it was.
        transport.client = self._last_client
        try:
            return super()._get_pool(asynchronous)
        finally:
            transport.client = None


class SentinelTransport(_SentinelTransport):
    Channel = SentinelChannel
