"""A gateway far behind (its delivery stream full) defers deliveries without spending attempts.

Real Redis and SQLite: one gateway's delivery stream is bounded at two
entries, its recipient gets five notifications, and the tenant allows only
two attempts. Refusals must not use those attempts up while the patience
lasts; past it they count as failures, and the entries end as dead letters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import coredis
import pytest
import trio

from notifactor.config import Config, DispatcherConfig
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.dlq_entry import decode_dlq_entry
from notifactor.domain.envelope import Envelope
from notifactor.domain.routing import decode_routed
from tests.integration.dispatcher_harness import (
    FAST,
    Harness,
    dispatcher_config,
    make_envelope,
    open_store,
    running_dispatcher,
)

pytestmark = pytest.mark.integration

GATEWAY = "gw-behind"


def small_stream_config() -> Config:
    config = dispatcher_config(partitions=1, max_attempts=2, base_ms=20, cap_ms=100)
    return attrs.evolve(config, dispatcher=DispatcherConfig(delivery_stream_max_entries=2))


async def fan_out_everything(harness: Harness, expected: int) -> list[bytes]:
    """Act as the gateway: read and delete its stream until ``expected`` messages came."""
    seen: list[bytes] = []
    stream = harness.keys.gateway_stream(GATEWAY)
    with trio.fail_after(30):
        while len(seen) < expected:
            for entry in await harness.redis.xrange(stream):
                seen.append(bytes(entry.field_values[b"message"]))
                await harness.redis.xdel(stream, [entry.identifier])
            await trio.sleep(0.05)
    return seen


@asynccontextmanager
async def recipient_behind(
    redis: coredis.Redis[bytes], prefix: str, tmp_path: Path, *, patience_s: float, count: int
) -> AsyncIterator[tuple[Harness, list[Envelope]]]:
    """A dispatcher, and ``count`` notifications published for a user of the gateway behind."""
    settings = attrs.evolve(FAST, full_stream_patience_s=patience_s)
    async with (
        open_store(tmp_path / "n.db") as store,
        running_dispatcher(
            redis, store, prefix, config=small_stream_config(), settings=settings
        ) as harness,
    ):
        await harness.presence.register("tenant-a", "user-1", GATEWAY)
        envelopes = [make_envelope(user_id="user-1") for _ in range(count)]
        for envelope in envelopes:
            await harness.publish(envelope)
        yield harness, envelopes


async def test_refusals_defer_without_spending_attempts_until_the_gateway_catches_up(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    async with recipient_behind(redis_client, redis_prefix, tmp_path, patience_s=60.0, count=5) as (
        harness,
        envelopes,
    ):
        # The gateway reads nothing for a while: far longer than two attempts
        # of this policy would last (under 0.2 s).
        await trio.sleep(1.5)
        assert len(await harness.gateway_messages(GATEWAY)) == 2
        assert await harness.dlq_entries() == []
        refused = [e for e in envelopes if await harness.state_of(e) is DeliveryState.RETRYING]
        assert len(refused) == 3
        # It catches up: every notification reaches it, each on its first attempt.
        messages = [decode_routed(raw) for raw in await fan_out_everything(harness, 5)]
        assert sorted(m.id for m in messages) == sorted(e.id for e in envelopes)
        assert {m.attempt for m in messages} == {1}
        states = await harness.wait_states(envelopes, lambda s: s is DeliveryState.DELIVERED)
        assert set(states.values()) == {DeliveryState.DELIVERED}
        assert await harness.dlq_entries() == []


async def test_past_the_patience_refusals_count_and_end_as_exhausted_dead_letters(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    async with recipient_behind(redis_client, redis_prefix, tmp_path, patience_s=0.3, count=4) as (
        harness,
        _,
    ):
        dead = await harness.wait_dlq_entries(2)
        entries = [decode_dlq_entry(fields["entry"]) for fields in dead]
        assert {entry.reason for entry in entries} == {"exhausted"}
        assert {entry.attempts for entry in entries} == {2}
        assert all("delivery stream full" in entry.last_error for entry in entries)
        assert len(await harness.gateway_messages(GATEWAY)) == 2


async def test_a_gateway_that_took_it_is_not_sent_it_again_while_another_is_behind(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    """The user has sessions on a healthy gateway too: it gets each notification once."""
    healthy = "gw-healthy"
    copies: list[str] = []
    async with recipient_behind(redis_client, redis_prefix, tmp_path, patience_s=60.0, count=0) as (
        harness,
        _,
    ):
        await harness.presence.register("tenant-a", "user-1", healthy)
        stream = harness.keys.gateway_stream(healthy)

        async def keep_up() -> None:  # the healthy gateway reads as it goes
            while True:
                for entry in await harness.redis.xrange(stream):
                    copies.append(decode_routed(bytes(entry.field_values[b"message"])).id)
                    await harness.redis.xdel(stream, [entry.identifier])
                await trio.sleep(0.02)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_up)
            envelopes = [make_envelope(user_id="user-1") for _ in range(6)]
            for envelope in envelopes:
                await harness.publish(envelope)
            await trio.sleep(1.5)  # many deferrals of what the gateway behind refused
            late = [decode_routed(raw).id for raw in await fan_out_everything(harness, 6)]
            await trio.sleep(0.3)
            nursery.cancel_scope.cancel()
    ids = sorted(e.id for e in envelopes)
    assert sorted(late) == ids
    assert sorted(copies) == ids  # each exactly once, however often the others were deferred
