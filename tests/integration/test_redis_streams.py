"""Redis Streams through coredis under Trio, against a real server.

coredis's own CI does not exercise Trio, so these pin down the calls the
stream bus is built on: consumer groups, blocking reads, acks, pending
inspection, claiming, pipelines, and cancelling a blocked read.
"""

from __future__ import annotations

import coredis
import pytest
import trio
import trio.testing
from coredis.response.types import StreamPending, StreamPendingExt

pytestmark = pytest.mark.integration


async def _pending(
    client: coredis.Redis[bytes], stream: str, consumer: str | None = None
) -> list[StreamPendingExt]:
    detail = await client.xpending(stream, "g", start="-", end="+", count=10, consumer=consumer)
    assert not isinstance(detail, StreamPending)
    return list(detail)


async def _add(client: coredis.Redis[bytes], stream: str, fields: dict[str, str]) -> bytes:
    entry_id = await client.xadd(stream, fields)
    assert entry_id is not None  # None only with NOMKSTREAM on a missing stream
    return entry_id


async def _group(client: coredis.Redis[bytes], stream: str, group: str = "g") -> None:
    await client.xgroup_create(stream, group, identifier="$", mkstream=True)


async def test_blocking_xreadgroup_wakes_on_xadd(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    stream = f"{redis_prefix}s"
    await _group(redis_client, stream)
    received: dict[str, object] = {}

    async def reader() -> None:
        received["reply"] = await redis_client.xreadgroup(
            "g", "c1", streams={stream: ">"}, count=10, block=10_000
        )

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            assert "reply" not in received  # nothing to read yet: the call blocks
            entry_id = await redis_client.xadd(stream, {"kind": "welcome"})

    reply = received["reply"]
    assert isinstance(reply, dict)
    (entry,) = reply[stream.encode()]
    assert entry.identifier == entry_id
    assert entry.field_values == {b"kind": b"welcome"}


async def test_ack_pending_and_autoclaim(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    stream = f"{redis_prefix}s"
    await _group(redis_client, stream)
    ids = [await _add(redis_client, stream, {"i": str(i)}) for i in range(3)]

    reply = await redis_client.xreadgroup("g", "c1", streams={stream: ">"}, count=10)
    assert reply is not None
    assert [e.identifier for e in reply[stream.encode()]] == ids

    assert await redis_client.xack(stream, "g", [ids[0]]) == 1
    summary = await redis_client.xpending(stream, "g")
    assert isinstance(summary, StreamPending)
    assert summary.pending == 2
    assert [p.identifier for p in await _pending(redis_client, stream, "c1")] == ids[1:]

    # c1 "crashed": c2 takes over everything idle for at least 0 ms.
    _next_id, claimed, deleted = await redis_client.xautoclaim(
        stream, "g", "c2", min_idle_time=0, start="0-0", count=10
    )
    assert [e.identifier for e in claimed] == ids[1:]
    assert deleted == ()
    assert {p.consumer for p in await _pending(redis_client, stream)} == {b"c2"}


async def test_pipeline_batches_xadds(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    stream = f"{redis_prefix}s"
    async with redis_client.pipeline(transaction=False) as pipe:
        for i in range(200):
            pipe.xadd(stream, {"i": str(i)})
    results = pipe.results
    assert results is not None
    assert len(results) == 200
    assert await redis_client.xlen(stream) == 200
    entries = await redis_client.xrange(stream)
    assert [e.field_values[b"i"] for e in entries] == [str(i).encode() for i in range(200)]


async def test_cancelled_blocking_read_leaves_client_usable(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    stream = f"{redis_prefix}s"
    await _group(redis_client, stream)

    started = trio.current_time()
    with trio.move_on_after(0.3) as scope:
        await redis_client.xreadgroup("g", "c1", streams={stream: ">"}, block=10_000)
    assert scope.cancelled_caught
    assert trio.current_time() - started < 2  # stopped at the deadline, not at BLOCK

    entry_id = await redis_client.xadd(stream, {"after": "cancel"})
    with trio.fail_after(5):
        reply = await redis_client.xreadgroup("g", "c1", streams={stream: ">"}, block=1_000)
    assert reply is not None
    assert [e.identifier for e in reply[stream.encode()]] == [entry_id]
    assert await redis_client.ping() == b"PONG"


async def test_prefix_keeps_tests_apart(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    await redis_client.set(f"{redis_prefix}k", "v")
    keys = [key async for key in redis_client.scan_iter(match=f"{redis_prefix}*")]
    assert keys == [f"{redis_prefix}k".encode()]
