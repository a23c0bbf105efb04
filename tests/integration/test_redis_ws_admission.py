"""The cluster-wide WebSocket connection count (``wsconn:{tenant}``) on a real Redis."""

from __future__ import annotations

import coredis
import pytest
import trio

from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_ws_admission import AdmissionResult, RedisWsAdmission
from notifactor.edge.admission import ConnectionAdmission, Verdict
from notifactor.edge.registry import SessionRegistry

pytestmark = pytest.mark.integration


async def test_limit_is_honoured_and_release_frees_a_slot(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    store = RedisWsAdmission(redis_client, keys=RedisKeys(prefix=redis_prefix))
    assert (await store.admit("t", "gw-a/1", 2)).admitted
    second = await store.admit("t", "gw-b/1", 2)
    assert second == AdmissionResult(admitted=True, count=2)
    refused = await store.admit("t", "gw-a/2", 2)
    assert refused == AdmissionResult(admitted=False, count=2)
    assert (await store.admit("other", "gw-a/3", 2)).admitted  # tenants are separate
    await store.release([("t", "gw-a/1")])
    assert (await store.admit("t", "gw-a/2", 2)).admitted
    assert await store.count("t") == 2
    ttl = await redis_client.pttl(store.key("t"))
    assert 0 < ttl <= store.ttl_ms


async def test_expired_members_are_dropped_and_refresh_keeps_live_ones(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    store = RedisWsAdmission(redis_client, keys=RedisKeys(prefix=redis_prefix), ttl_ms=300)
    # A crashed gateway's member, long expired, does not count.
    await redis_client.zadd(store.key("t"), {"gw-dead/1": 1})
    assert (await store.admit("t", "gw-a/1", 2)).admitted
    assert (await store.admit("t", "gw-b/1", 2)).admitted
    assert await store.count("t") == 2
    for _ in range(4):  # refreshed members outlive their TTL
        await trio.sleep(0.15)
        assert await store.refresh({"t": ["gw-a/1"]}) == 1
    # gw-b/1 was never refreshed: it expired, so there is room again...
    result = await store.admit("t", "gw-c/1", 2)
    assert result == AdmissionResult(admitted=True, count=2)
    # ...but gw-a/1 is still live, so the tenant is full.
    assert not (await store.admit("t", "gw-d/1", 2)).admitted
    await store.release([("t", "gw-c/1")])
    assert await store.count("t") == 1


async def test_a_live_member_that_redis_lost_is_counted_again_on_the_next_refresh(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    """An outage longer than the TTL (or a restart) must not leave a tenant over its limit."""
    store = RedisWsAdmission(redis_client, keys=RedisKeys(prefix=redis_prefix))
    gateway_a = ConnectionAdmission(SessionRegistry(), store, gateway_id="gw-a")
    gateway_b = ConnectionAdmission(SessionRegistry(), store, gateway_id="gw-b")
    assert (await gateway_a.admit("t", "s1", 2)).verdict is Verdict.ADMITTED
    assert (await gateway_a.admit("t", "s2", 2)).verdict is Verdict.ADMITTED
    await redis_client.delete([store.key("t")])  # what Redis lost
    await gateway_a.refresh()  # gw-a's next heartbeat
    assert await store.count("t") == 2
    assert (await gateway_b.admit("t", "s1", 2)).verdict is Verdict.FULL
    # A session released before the refresh is not brought back by it.
    gateway_a.release("t", "s2")
    await store.release([("t", "gw-a/s2")])
    await gateway_a.refresh()
    assert await store.count("t") == 1


async def test_connection_admission_counts_locally_and_removes_once(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    store = RedisWsAdmission(redis_client, keys=RedisKeys(prefix=redis_prefix))
    registry = SessionRegistry()
    admission = ConnectionAdmission(registry, store, gateway_id="gw-a")
    async with trio.open_nursery() as nursery:
        await nursery.start(admission.run)
        assert (await admission.admit("t", "s1", 1)).verdict is Verdict.ADMITTED
        full = await admission.admit("t", "s2", 1)
        assert full.verdict is Verdict.FULL  # refused by the local count already
        assert registry.connections("t") == 1
        assert admission.live_members() == {"t": ["gw-a/s1"]}
        admission.release("t", "s1")
        assert registry.connections("t") == 0
        with trio.fail_after(5):
            while await store.count("t"):  # noqa: ASYNC110 - Redis is another system
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def test_unreachable_redis_refuses_instead_of_admitting() -> None:
    async with open_redis("redis://127.0.0.1:1") as dead:
        store = RedisWsAdmission(dead)
        registry = SessionRegistry()
        admission = ConnectionAdmission(registry, store, gateway_id="gw-a", timeout_s=1.0)
        verdict = await admission.admit("t", "s1", 5)
    assert verdict.verdict is Verdict.UNAVAILABLE
    assert registry.connections("t") == 0
