"""Kombu's Redis Sentinel transport, with one defect mended: a worker that loses its master
(killed, failed over) must survive closing its old channel.

When the connection breaks, Celery closes it; closing a Redis channel gives its unacknowledged
messages back to the broker (`restore_unacked_once`), which asks for a connection pool again.
By then kombu has let go of the pool and of the connection's client, so building the pool's
parameters raises AttributeError ('NoneType' object has no attribute 'hostname'), which Celery
does not expect there: the worker stopped with "Unrecoverable error" at the first failover
(tests/cluster/test_sentinel_failover.py; the same defect: celery/kombu#582, #970).

Here a channel remembers the connection's client it was made with (its URLs name the
sentinels) and builds the pool from it when the connection no longer has one; the messages it
gives back then go to the master the sentinels name now. Settings select it for `sentinel://`
brokers (`CELERY_BROKER_TRANSPORT`).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

# Kombu's own classes, untyped: its stubs leave out the pool methods mended here.
_Channel: Any = kombu_redis.SentinelChannel
_Transport: Any = kombu_redis.SentinelTransport


class SentinelChannel(_Channel):
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


class SentinelTransport(_Transport):
    Channel = SentinelChannel
