"""REST → dispatcher → gateway delivery stream → socket, over real sockets, Redis and storage."""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
from websockets.exceptions import ConnectionClosed

from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.domain.cursor import cursor_for
from notifactor.domain.notification import Notification
from notifactor.domain.routing import RoutedMessage, encode_routed
from notifactor.edge.delivery_consumer import remove_dead_streams
from notifactor.edge.settings import EdgeSettings
from tests.e2e.stores import Storage
from tests.e2e.ws_support import Stack, WsClient, running_stack

pytestmark = pytest.mark.e2e


async def test_post_reaches_every_session_of_the_user_then_delivered_and_acked(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    async with running_stack(redis_url, tmp_path, redis_prefix, storage=storage) as s:
        phone, laptop = await s.connect("acme", "alice"), await s.connect("acme", "alice")
        await laptop.send_json({"type": "subscribe", "channels": ["billing"]})
        await laptop.recv_json()
        latencies = []
        for i in range(20):
            started = time.perf_counter()
            ident = await s.post("acme", "alice", content=f"n{i}", metadata={"i": i})
            frame = await phone.recv_json()
            latencies.append(time.perf_counter() - started)
            assert frame["id"] == ident
            assert frame["content"] == f"n{i}"
            assert frame["metadata"] == {"i": i}
            assert frame["channel"] == "alerts"
            assert frame["cursor"]
            assert frame["created_at"].endswith("Z")
        assert statistics.median(latencies) < 0.25
        billing = await s.post("acme", "alice", channel="billing")
        assert (await laptop.recv_json())["id"] == billing  # only its subscription
        assert (await phone.recv_json())["id"] == billing  # never subscribed: everything
        await s.wait_status("acme", billing, "delivered")
        await laptop.send_json({"type": "ack", "id": billing})
        await s.wait_status("acme", billing, "acked")
        for client in (phone, laptop):
            await client.close()


async def test_tenants_and_users_are_isolated_on_the_socket(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    async with running_stack(redis_url, tmp_path, redis_prefix, storage=storage) as s:
        a_bob, b_bob, a_carol = (
            await s.connect("tenant-a", "bob"),
            await s.connect("tenant-b", "bob"),
            await s.connect("tenant-a", "carol"),
        )
        for_a_bob = await s.post("tenant-a", "bob", content="for a/bob")
        for_b_bob = await s.post("tenant-b", "bob", content="for b/bob")
        assert (await a_bob.recv_json())["id"] == for_a_bob
        assert (await b_bob.recv_json())["id"] == for_b_bob
        await s.wait_status("tenant-a", for_a_bob, "delivered")
        # carol acks bob's notification: refused, and nothing changes.
        await a_carol.send_json({"type": "ack", "id": for_a_bob})
        assert (await a_carol.recv_json())["code"] == "unknown_notification"
        # b/bob acks a/bob's id: another tenant's id does not exist for him.
        await b_bob.send_json({"type": "ack", "id": for_a_bob})
        assert (await b_bob.recv_json())["code"] == "unknown_notification"
        await a_carol.send_json({"type": "ping"})
        assert await a_carol.recv_json() == {"type": "pong"}  # carol got nothing else
        await b_bob.send_json({"type": "ping"})
        assert await b_bob.recv_json() == {"type": "pong"}
        await trio.sleep(0.3)
        assert await s.status_of("tenant-a", for_a_bob) == "delivered"
        for client in (a_bob, b_bob, a_carol):
            await client.close()


async def test_slow_consumer_is_closed_1013_without_slowing_others(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    settings = EdgeSettings(
        heartbeat_s=30, outbox_size=64, consumer_block_ms=200, close_timeout_s=1
    )
    async with running_stack(
        redis_url,
        tmp_path,
        redis_prefix,
        storage=storage,
        settings=settings,
        dispatcher=False,
        http=False,
    ) as s:
        slow = await s.connect("t", "slow")
        others = [await s.connect("t", f"fast-{i}") for i in range(3)]
        baseline = await _latencies(s, others, 20)
        # The slow user gets 8 KiB notifications until its buffers and outbox fill.
        big = "x" * 8000
        for batch in range(40):
            await _route(s, [_routed(f"slow-{batch}-{i}", "t", "slow", big) for i in range(100)])
        during = await _latencies(s, others, 20)
        assert statistics.median(during) < max(0.1, 5 * statistics.median(baseline))
        codes = await trio.to_thread.run_sync(_drain_close_code, slow)
        assert codes == 1013
        for client in others:
            await client.close()


@pytest.mark.parametrize("seed", [7, 31, 2026])
async def test_resume_after_random_disconnects_never_loses_or_duplicates(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage, seed: int
) -> None:
    """Random disconnect points and post timings (three seeds, each store)."""
    rng = random.Random(seed)
    async with running_stack(redis_url, tmp_path, redis_prefix, storage=storage) as s:
        posted: list[str] = []
        received: list[str] = []
        cursor: str | None = None
        with trio.move_on_after(45):
            async with trio.open_nursery() as nursery:
                done = trio.Event()

                async def post_steadily() -> None:
                    for i in range(120):
                        posted.append(await s.post("t", "roamer", content=f"m{i}"))
                        await trio.sleep(rng.uniform(0, 0.01))
                    done.set()

                nursery.start_soon(post_steadily)
                while not done.is_set() or len(set(received)) < len(posted):
                    client = await s.connect("t", "roamer")
                    if cursor is not None:
                        await client.send_json({"type": "resume", "since": cursor})
                    for _ in range(rng.randint(3, 25)):
                        try:
                            frame = await client.recv_json(within_s=2)
                        except TimeoutError:
                            break
                        if frame["type"] == "notification":
                            received.append(frame["id"])
                            cursor = frame["cursor"]
                    await client.close()
        missing = [(i, await s.status_of("t", i)) for i in posted if i not in set(received)]
        assert not missing, f"lost: {missing}"
        assert len(received) == len(set(received)), "a notification arrived twice"
        assert received == sorted(received, key=posted.index), "out of order"


async def test_resume_replays_what_was_missed_then_goes_live(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    """``resume`` replays in order, answers ``resumed`` with the count, then live frames."""
    async with running_stack(redis_url, tmp_path, redis_prefix, storage=storage) as s:
        first = await s.connect("t", "u")
        ids = [await s.post("t", "u", content=f"c{i}") for i in range(3)]
        frames = [await first.recv_json() for _ in ids]
        cursor = frames[0]["cursor"]
        await first.close()
        missed = [await s.post("t", "u", content=f"d{i}") for i in range(4)]
        await s.wait_status("t", missed[-1], "pending")
        again = await s.connect("t", "u")
        await again.send_json({"type": "resume", "since": cursor})
        replay = await again.recv_until("resumed")
        assert [f["id"] for f in replay[:-1]] == ids[1:] + missed
        assert replay[-1] == {"type": "resumed", "count": 6}
        live = await s.post("t", "u", content="live")
        assert (await again.recv_json())["id"] == live
        await s.wait_status("t", missed[0], "delivered")
        await again.close()


async def test_presence_follows_sessions_and_dead_streams_are_removed(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    async with running_stack(
        redis_url, tmp_path, redis_prefix, storage=storage, dispatcher=False, http=False
    ) as s:
        gateway = s.edge.gateway_id
        client = await s.connect("t", "p")
        assert await s.redis.hget(s.keys.presence("t", "p"), gateway) == b"1"
        await client.close()
        with trio.fail_after(5):
            while await s.redis.hget(s.keys.presence("t", "p"), gateway) is not None:  # noqa: ASYNC110
                await trio.sleep(0.02)
        # A gateway that died long ago left its stream behind; a live one keeps its own.
        dead = s.keys.gateway_stream("dead-gw")
        await s.redis.xadd(dead, {"message": b"{}"}, identifier="1-1")
        removed = await remove_dead_streams(s.redis, s.keys, stale_ms=1000)
        assert removed >= 1
        assert not await s.redis.exists([dead])
        assert await s.redis.exists([s.keys.gateway_alive(gateway)])


# --- helpers -----------------------------------------------------------------


def _routed(ident: str, tenant: str, user: str, content: str) -> RoutedMessage:
    note = Notification(
        tenant_id=tenant,
        id=ident,
        user_id=user,
        channel="alerts",
        content=content,
        created_at=datetime.now(UTC),
    )
    return RoutedMessage(
        id=ident,
        tenant_id=tenant,
        user_id=user,
        channel="alerts",
        content=content,
        priority="normal",
        metadata={},
        created_at=note.created_at,
        cursor=cursor_for(note),
        attempt=1,
        traceparent="",
    )


async def _route(s: Stack, messages: list[RoutedMessage]) -> None:
    stream = RedisKeys(prefix=s.keys.prefix).gateway_stream(s.edge.gateway_id)
    async with s.redis.pipeline(transaction=False) as pipe:
        for message in messages:
            pipe.xadd(stream, {"message": encode_routed(message)})


async def _latencies(s: Stack, clients: list[WsClient], rounds: int) -> list[float]:
    out = []
    for n in range(rounds):
        started = time.perf_counter()
        await _route(
            s,
            [
                _routed(f"probe-{time.time_ns()}-{n}-{i}", "t", f"fast-{i}", "p")
                for i in range(len(clients))
            ],
        )
        for client in clients:
            frame = await client.recv_json(within_s=5)
            assert frame["type"] == "notification"
        out.append(time.perf_counter() - started)
    return out


def _drain_close_code(client: WsClient) -> int | None:
    try:
        while True:
            client.connection.recv(timeout=10)
    except ConnectionClosed:
        pass
    return client.connection.close_code
