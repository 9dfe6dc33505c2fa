"""A batch of group messages through channels-redis, as `group_send` would send each one."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer, channel_layers

from scheduler.live.channel_batches import (
    SyncClients,
    batchable,
    group_send_many,
    group_send_many_sync,
)

TIMEOUT = 5


def _layer(**overrides):
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    for name, value in overrides.items():
        setattr(layer, name, value)
    return layer


def _group() -> str:
    return f"tests.batch.{uuid.uuid4().hex[:10]}"


async def _received(layer, channel: str, count: int) -> list[dict]:
    return [await asyncio.wait_for(layer.receive(channel), TIMEOUT) for _ in range(count)]


@pytest.mark.asyncio
async def test_it_delivers_every_message_to_every_member_in_order():
    layer = _layer()
    assert batchable(layer)
    staff, task = _group(), _group()
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add(staff, a)
    await layer.group_add(staff, b)
    await layer.group_add(task, b)

    await group_send_many(
        layer,
        [(staff, {"type": "e", "n": n}) for n in range(20)] + [(task, {"type": "e", "n": "done"})],
    )

    assert [m["n"] for m in await _received(layer, a, 20)] == list(range(20))
    got = [m["n"] for m in await _received(layer, b, 21)]
    assert got[:20] == list(range(20))
    assert got[20] == "done"
    await layer.flush()


@pytest.mark.asyncio
async def test_groups_nobody_is_in_cost_nothing_and_break_nothing():
    layer = _layer()
    listened = _group()
    channel = await layer.new_channel()
    await layer.group_add(listened, channel)

    await group_send_many(
        layer, [(_group(), {"type": "e", "n": 1}), (listened, {"type": "e", "n": 2})]
    )
    await group_send_many(layer, [(_group(), {"type": "e"})])
    await group_send_many(layer, [])

    assert [m["n"] for m in await _received(layer, channel, 1)] == [2]
    await layer.flush()


@pytest.mark.asyncio
async def test_it_receives_what_group_send_would_have_sent():
    layer = _layer()
    group = _group()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    message = {"type": "scheduler.event", "event": {"id": 7, "data": {"nested": [1, "x"]}}}

    await layer.group_send(group, message)
    await group_send_many(layer, [(group, message)])

    stock, batched = await _received(layer, channel, 2)
    assert stock == batched == message
    await layer.flush()


@pytest.mark.asyncio
async def test_a_full_channel_drops_messages_as_group_send_does():
    layer = _layer(capacity=3)
    group = _group()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)

    await group_send_many(layer, [(group, {"type": "e", "n": n}) for n in range(5)])

    assert [m["n"] for m in await _received(layer, channel, 3)] == [0, 1, 2]
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.3)
    await layer.flush()


@pytest.mark.asyncio
async def test_other_layers_get_plain_group_sends():
    layer = InMemoryChannelLayer()
    assert not batchable(layer)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)

    await group_send_many(layer, [("g", {"type": "e", "n": 1}), ("g", {"type": "e", "n": 2})])

    assert [(await layer.receive(channel))["n"] for _ in range(2)] == [1, 2]


@pytest.mark.asyncio
async def test_the_blocking_version_delivers_the_same_and_drops_expired_members_too():
    layer = _layer()
    clients = SyncClients(layer)
    staff, task, gone = _group(), _group(), _group()
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add(staff, a)
    await layer.group_add(task, b)
    await layer.group_add(gone, b)
    messages = [(staff, {"type": "e", "n": n}) for n in range(3)] + [(task, {"type": "e", "n": 9})]
    try:
        # The member reads are one script per server: groups nobody is in cost nothing.
        await asyncio.to_thread(group_send_many_sync, layer, [*messages, (_group(), {})], clients)
        assert [m["n"] for m in await _received(layer, a, 3)] == [0, 1, 2]
        assert [m["n"] for m in await _received(layer, b, 1)] == [9]

        # A member older than the group expiry is dropped, as group_send drops it.
        expired = _layer(group_expiry=-10)
        await asyncio.to_thread(group_send_many_sync, expired, [(gone, {"n": 1})], clients)
        assert clients(0).zcard(layer._group_key(gone)) == 0
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(b), 0.3)
    finally:
        clients.close()
        await layer.flush()
