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

Messages to the same channel keep the batch's order: each gets a later score than the one before
(`group_send` uses `time.time()` per call, which can tie, and ties are ordered by content).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

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
_LAYER_HELPERS = (
    "_group_key",
    "consistent_hash",
    "connection",
    "_map_channel_keys_to_connection",
    "group_expiry",
    "expiry",
)


def batchable(layer: Any) -> bool:
    from channels_redis.core import RedisChannelLayer

    return isinstance(layer, RedisChannelLayer) and all(
        hasattr(layer, name) for name in _LAYER_HELPERS
    )


async def group_send_many(layer: Any, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send each (group, message) as `layer.group_send(group, message)` would, in order."""
    if not messages:
        return
    if not batchable(layer):
        for group, message in messages:
            await layer.group_send(group, message)
        return
    members = await _members(layer, list(dict.fromkeys(group for group, _ in messages)))
    pipelines: dict[int, Any] = {}
    # Per pipeline, which replies are the scripts' (the others are trims of expired messages).
    scripts: dict[int, list[bool]] = defaultdict(list)
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
            pipe = pipelines.get(index)
            if pipe is None:
                pipe = pipelines[index] = layer.connection(index).pipeline(transaction=False)
            for key in keys:
                pipe.zremrangebyscore(key, min=0, max=expired_before)
            scripts[index] += [False] * len(keys) + [True]
            step += 1
            pipe.eval(
                _GROUP_SEND_LUA,
                len(keys),
                *keys,
                *[keyed_messages[key] for key in keys],
                *[capacities[key] for key in keys],
                now + step * 1e-6,
                layer.expiry,
            )
    if not pipelines:
        return
    indexes = list(pipelines)
    replies = await asyncio.gather(*(pipelines[index].execute() for index in indexes))
    # A script answers how many of its channels were full.
    over = sum(
        int(reply)
        for index, answers in zip(indexes, replies, strict=True)
        for reply, is_script in zip(answers, scripts[index], strict=True)
        if is_script
    )
    if over:
        logger.info("%d message(s) not delivered: channel over capacity", over)


async def _members(layer: Any, groups: list[str]) -> dict[str, list[str]]:
    by_connection: dict[int, list[str]] = defaultdict(list)
    for group in groups:
        assert layer.require_valid_group_name(group), "Group name not valid"
        by_connection[layer.consistent_hash(group)].append(group)
    expired_before = int(time.time()) - layer.group_expiry

    async def read(index: int, names: list[str]) -> dict[str, list[str]]:
        pipe = layer.connection(index).pipeline(transaction=False)
        for group in names:
            key = layer._group_key(group)
            pipe.zremrangebyscore(key, min=0, max=expired_before)
            pipe.zrange(key, 0, -1)
        replies = await pipe.execute()
        return {
            group: [channel.decode("utf8") for channel in channels]
            for group, channels in zip(names, replies[1::2], strict=True)
        }

    found: dict[str, list[str]] = {}
    for part in await asyncio.gather(*(read(i, names) for i, names in by_connection.items())):
        found.update(part)
    return found
