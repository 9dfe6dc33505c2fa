"""Send a batch of group messages through channels-redis in two round trips.

`RedisChannelLayer.group_send` costs two round trips per message to a group nobody is in
(expire old members, read members) and four to a group with members (then expire old messages,
then a Lua script that adds the message to each member channel). The event publisher sends every
event to two or three groups, so a no-op task cost a dozen round trips, each with its share of
asyncio and redis-py overhead, in every worker process.

`group_send_many` does what `group_send` does for a whole batch with one pipeline to read the
members of every group in it, and one pipeline per Redis server to deliver to the channels that
have members (groups nobody listens to, like `task.<id>` without a waiting client, cost nothing
more). It mirrors channels-redis 4.x's `group_send` (same keys, same Lua script, same capacity
and expiry rules) through that layer's helpers; any other layer gets plain `group_send` calls.
`group_send_many_sync` is the same over redis-py's blocking client, for a thread with no event
loop: it costs a quarter of the CPU of running the asyncio version to completion there. It reads
the members with one script call per server rather than two commands per group: a worker sends
a batch at the end of every run, and packing and parsing the pipeline's commands was most of
that batch's CPU.

Messages to the same channel keep the batch's order: each gets a later score than the one before
(`group_send` uses `time.time()` per call, which can tie, and ties are ordered by content).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis
from channels_redis.core import RedisChannelLayer
from redis.sentinel import Sentinel, SentinelConnectionPool

logger = logging.getLogger(__name__)

# channels_redis.core.RedisChannelLayer.group_send's script, unchanged.
_GROUP_SEND_LUA = """
    local over_capacity = 0
    local current_time = ARGV[#ARGV - 1]
    local expiry = ARGV[#ARGV]
    for i=1,#KEYS do
        if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
            redis.call('ZADD', KEYS[i], current_time, ARGV[i])
            redis.call('EXPIRE', KEYS[i], expiry)
        else
            over_capacity = over_capacity + 1
        end
    end
    return over_capacity
"""
# The member reads of `_member_reads` for the groups of KEYS, as one script: what `group_send`
# does first (drop the members older than ARGV[1], read the others), per group, in KEYS order.
_MEMBERS_LUA = """
    local members = {}
    for i=1,#KEYS do
        redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, ARGV[1])
        members[i] = redis.call('ZRANGE', KEYS[i], 0, -1)
    end
    return members
"""
_LAYER_HELPERS = (
    "_group_key",
    "consistent_hash",
    "connection",
    "_map_channel_keys_to_connection",
    "group_expiry",
    "expiry",
    "hosts",
)

Messages = list[tuple[str, dict[str, Any]]]


def batchable(layer: Any) -> bool:
    return isinstance(layer, RedisChannelLayer) and all(
        hasattr(layer, name) for name in _LAYER_HELPERS
    )


@dataclass
class _Commands:
    """Commands for one Redis server's pipeline, and which replies are the scripts'."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    scripts: list[bool] = field(default_factory=list)

    def add(self, name: str, *args: Any, script: bool = False) -> None:
        self.calls.append((name, args))
        self.scripts.append(script)

    def queue_on(self, pipe: Any) -> Any:
        for name, args in self.calls:
            getattr(pipe, name)(*args)
        return pipe


def _groups_by_server(layer: Any, messages: Messages) -> dict[int, list[str]]:
    """The groups `messages` go to, each once, by the index of the server that holds it."""
    by_server: dict[int, list[str]] = {}
    for group in dict.fromkeys(group for group, _ in messages):
        assert layer.require_valid_group_name(group), "Group name not valid"
        by_server.setdefault(layer.consistent_hash(group), []).append(group)
    return by_server


def _member_reads(layer: Any, messages: Messages) -> dict[int, tuple[list[str], _Commands]]:
    reads: dict[int, tuple[list[str], _Commands]] = {}
    expired_before = int(time.time()) - layer.group_expiry
    for index, names in _groups_by_server(layer, messages).items():
        commands = _Commands()
        for group in names:
            key = layer._group_key(group)
            commands.add("zremrangebyscore", key, 0, expired_before)
            commands.add("zrange", key, 0, -1)
        reads[index] = (names, commands)
    return reads


def _members_from(names: list[str], replies: list[Any]) -> dict[str, list[str]]:
    return {
        group: [channel.decode("utf8") for channel in channels]
        for group, channels in zip(names, replies[1::2], strict=True)
    }


def _deliveries(
    layer: Any, messages: Messages, members: dict[str, list[str]]
) -> dict[int, _Commands]:
    deliveries: dict[int, _Commands] = defaultdict(_Commands)
    now = time.time()
    expired_before = int(now) - int(layer.expiry)
    step = 0
    for group, message in messages:
        channels = members[group]
        if not channels:
            continue
        by_connection, keyed_messages, capacities = layer._map_channel_keys_to_connection(
            channels, message
        )
        for index, keys in by_connection.items():
            commands = deliveries[index]
            for key in keys:
                commands.add("zremrangebyscore", key, 0, expired_before)
            step += 1
            commands.add(
                "eval",
                _GROUP_SEND_LUA,
                len(keys),
                *keys,
                *[keyed_messages[key] for key in keys],
                *[capacities[key] for key in keys],
                now + step * 1e-6,
                layer.expiry,
                script=True,
            )
    return deliveries


def _log_over_capacity(deliveries: dict[int, _Commands], replies: list[list[Any]]) -> None:
    # A script answers how many of its channels were full.
    over = sum(
        int(reply)
        for commands, answers in zip(deliveries.values(), replies, strict=True)
        for reply, is_script in zip(answers, commands.scripts, strict=True)
        if is_script
    )
    if over:
        logger.info("%d message(s) not delivered: channel over capacity", over)


async def group_send_many(layer: Any, messages: Messages) -> None:
    """Send each (group, message) as `layer.group_send(group, message)` would, in order."""
    if not messages:
        return
    if not batchable(layer):
        for group, message in messages:
            await layer.group_send(group, message)
        return
    reads = _member_reads(layer, messages)

    async def read(index: int, names: list[str], commands: _Commands) -> dict[str, list[str]]:
        pipe = commands.queue_on(layer.connection(index).pipeline(transaction=False))
        return _members_from(names, await pipe.execute())

    members: dict[str, list[str]] = {}
    for part in await asyncio.gather(*(read(i, *reads[i]) for i in reads)):
        members.update(part)
    deliveries = _deliveries(layer, messages, members)
    if not deliveries:
        return
    replies = await asyncio.gather(
        *(
            commands.queue_on(layer.connection(index).pipeline(transaction=False)).execute()
            for index, commands in deliveries.items()
        )
    )
    _log_over_capacity(deliveries, list(replies))


class SyncClients:
    """redis-py blocking clients to a channels-redis layer's servers, made as they are needed."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self._clients: dict[int, redis.Redis] = {}
        self._member_scripts: dict[int, Any] = {}

    def __call__(self, index: int) -> redis.Redis:
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = redis.Redis(connection_pool=self._pool(index))
        return client

    def members_script(self, index: int) -> Any:
        """The member reads' script on server `index` (EVALSHA, loaded again if flushed)."""
        script = self._member_scripts.get(index)
        if script is None:
            script = self._member_scripts[index] = self(index).register_script(_MEMBERS_LUA)
        return script

    def _pool(self, index: int) -> redis.ConnectionPool:
        # channels_redis.utils.create_pool, with the blocking classes.
        host = dict(self.layer.hosts[index])
        if "address" in host:
            return redis.ConnectionPool.from_url(host.pop("address"), **host)
        master_name = host.pop("master_name", None)
        if master_name is not None:
            sentinel = Sentinel(
                host.pop("sentinels"), sentinel_kwargs=host.pop("sentinel_kwargs", None)
            )
            return SentinelConnectionPool(master_name, sentinel, **host)
        return redis.ConnectionPool(**host)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self._member_scripts.clear()


def group_send_many_sync(layer: Any, messages: Messages, clients: SyncClients) -> None:
    """`group_send_many` over blocking clients; the layer must be `batchable`."""
    if not messages:
        return
    expired_before = int(time.time()) - layer.group_expiry
    members: dict[str, list[str]] = {}
    for index, names in _groups_by_server(layer, messages).items():
        keys = [layer._group_key(group) for group in names]
        replies = clients.members_script(index)(keys=keys, args=[expired_before])
        for group, channels in zip(names, replies, strict=True):
            members[group] = [channel.decode("utf8") for channel in channels]
    deliveries = _deliveries(layer, messages, members)
    replies = [
        commands.queue_on(clients(index).pipeline(transaction=False)).execute()
        for index, commands in deliveries.items()
    ]
    _log_over_capacity(deliveries, replies)
