"""Routing onto gateway delivery streams (a full stream refuses, it never trims unread
entries), and how full the dead-letter stream is."""

from __future__ import annotations

import coredis
import pytest

from notifactor.actors import ActorRef
from notifactor.actors.storage_writer import StorageWriterClient
from notifactor.adapters.redis_dispatch import RedisDispatchBus, RedisKeys
from notifactor.adapters.redis_presence import RedisPresence
from notifactor.config import Config, DispatcherConfig
from notifactor.dispatcher.runner import redis_deps
from notifactor.ports.dispatch import Handoff

pytestmark = pytest.mark.integration


async def test_a_full_delivery_stream_refuses_instead_of_trimming(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    keys = RedisKeys(prefix=redis_prefix)
    bus = RedisDispatchBus(redis_client, keys=keys, gateway_stream_maxlen=3)
    presence = RedisPresence(redis_client, keys=keys)
    await presence.register("t", "u", "gw-slow")
    await presence.register("t", "v", "gw-fast")
    messages = [f"m{i}".encode() for i in range(5)]
    taken = await bus.route([("gw-slow", message) for message in messages])
    T, F = Handoff.TAKEN, Handoff.FULL
    assert taken == [T, T, T, F, F]
    stream = keys.gateway_stream("gw-slow")
    entries = await redis_client.xrange(stream)
    # The three unread deliveries are all still there, oldest first.
    assert [entry.field_values[b"message"] for entry in entries] == messages[:3]
    # Another gateway's stream is not affected; a gateway that is gone takes nothing.
    assert await bus.route([("gw-fast", b"x"), ("gw-gone", b"y")]) == [T, Handoff.GONE]
    # Once the slow gateway has fanned out (and deleted) what it read, it takes more.
    await redis_client.xdel(stream, [entries[0].identifier])
    assert await bus.route([("gw-slow", b"m5"), ("gw-slow", b"m6")]) == [T, F]


async def test_dlq_fill_reports_length_and_capacity(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    keys = RedisKeys(prefix=redis_prefix)
    bus = RedisDispatchBus(redis_client, keys=keys, dlq_maxlen=500)
    assert await bus.dlq_fill() == (0, 500)
    for n in range(3):
        await redis_client.xadd(keys.dlq, {"entry": f"{n}"})
    assert await bus.dlq_fill() == (3, 500)


async def test_the_dispatcher_takes_its_stream_bounds_from_config(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    config = Config(
        jwt_secret="x" * 40,
        dispatcher=DispatcherConfig(delivery_stream_max_entries=2, dlq_max_entries=700),
    )
    keys = RedisKeys(prefix=redis_prefix)
    writer = StorageWriterClient(ActorRef("unused-writer", mailbox_size=1))
    bus = redis_deps(config, redis_client, writer, keys=keys).bus
    assert await bus.dlq_fill() == (0, 700)
    await RedisPresence(redis_client, keys=keys).register("t", "u", "gw-1")
    T, F = Handoff.TAKEN, Handoff.FULL
    assert await bus.route([("gw-1", b"a"), ("gw-1", b"b"), ("gw-1", b"c")]) == [T, T, F]
