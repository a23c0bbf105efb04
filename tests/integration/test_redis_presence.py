"""Presence on a real Redis: registrations, the batch lookup, and gateways that go away."""

from __future__ import annotations

import coredis
import pytest
import trio

from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_presence import RedisPresence

pytestmark = pytest.mark.integration


async def test_batch_lookup_names_the_live_gateways_of_each_recipient(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    presence = RedisPresence(redis_client, keys=RedisKeys(prefix=redis_prefix))
    await presence.register("t", "both", "gw-a")
    await presence.register("t", "both", "gw-b")
    await presence.register("t", "one", "gw-a")
    await presence.register("t", "one", "gw-a")  # a second session on the same gateway
    await presence.register("other", "both", "gw-b")  # same user id, other tenant
    recipients = [("t", "both"), ("t", "one"), ("t", "nobody"), ("other", "both")]
    assert await presence.gateways_for_many(recipients) == {
        ("t", "both"): frozenset({"gw-a", "gw-b"}),
        ("t", "one"): frozenset({"gw-a"}),
        ("other", "both"): frozenset({"gw-b"}),
    }
    # One of two sessions leaves: the user is still there.
    await presence.unregister("t", "one", "gw-a")
    assert await presence.gateways_for_many([("t", "one")]) == {("t", "one"): frozenset({"gw-a"})}
    await presence.unregister("t", "one", "gw-a")
    assert await presence.gateways_for_many([("t", "one")]) == {}
    assert await presence.gateways_for_many([]) == {}


async def test_a_gateway_that_stops_heartbeating_drops_out_of_lookups(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    presence = RedisPresence(redis_client, keys=RedisKeys(prefix=redis_prefix), ttl_ms=300)
    await presence.register("t", "u", "gw-crashed")
    await presence.register("t", "u", "gw-live")
    await presence.register("t", "v", "gw-crashed")
    for _ in range(4):  # only gw-live keeps heartbeating, past the TTL
        await trio.sleep(0.15)
        await presence.heartbeat("gw-live")
    assert await presence.gateways_for_many([("t", "u"), ("t", "v")]) == {
        ("t", "u"): frozenset({"gw-live"}),
    }
    # The lookup removed the crashed gateway's leftover field.
    keys = RedisKeys(prefix=redis_prefix)
    assert tuple(await redis_client.hkeys(keys.presence("t", "u"))) == (b"gw-live",)
    assert await presence.gateways_for("t", "u") == frozenset({"gw-live"})
    # A clean stop removes a gateway at once.
    await presence.drop_gateway("gw-live")
    assert await presence.gateways_for_many([("t", "u")]) == {}


async def test_missing_names_each_user_registered_with_fewer_sessions(
    redis_client: coredis.Redis[bytes], redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = RedisKeys(prefix=redis_prefix)
    presence = RedisPresence(redis_client, keys=keys)
    for user in ("alice", "alice", "bob", "carol"):
        await presence.register("t", user, "gw-a")
    await presence.register("t", "dave", "gw-b")  # another gateway's registration
    await redis_client.delete([keys.presence("t", "bob")])  # lost
    await redis_client.hincrby(keys.presence("t", "carol"), "gw-a", 5)  # too high
    held = {("t", "alice"): 2, ("t", "bob"): 1, ("t", "carol"): 1, ("t", "dave"): 1}
    assert await presence.missing("gw-a", held) == {("t", "bob"), ("t", "dave")}
    assert await presence.missing("gw-a", {("t", "alice"): 3}) == {("t", "alice")}
    assert await presence.missing("gw-a", {}) == set()
    # Batched like a reassert: positions map back to the right users in every batch.
    monkeypatch.setattr("notifactor.adapters.redis_presence.REASSERT_BATCH", 2)
    assert await presence.missing("gw-a", held) == {("t", "bob"), ("t", "dave")}


async def test_settle_writes_exact_counts_and_restores_a_lost_registration(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    keys = RedisKeys(prefix=redis_prefix)
    presence = RedisPresence(redis_client, keys=keys)
    for user in ("alice", "alice", "bob", "carol"):
        await presence.register("t", user, "gw-a")
    await redis_client.delete([keys.presence("t", "bob")])  # lost
    exact = {("t", "alice"): 1, ("t", "bob"): 1, ("t", "carol"): 0}
    await presence.settle("gw-a", exact)
    assert await presence.missing("gw-a", {("t", "alice"): 1, ("t", "bob"): 1}) == set()
    assert await presence.gateways_for_many([("t", "carol")]) == {}
