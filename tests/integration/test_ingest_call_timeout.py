"""Each ingest call is bounded in time by the bus itself, at its own deadline, and not sent after.

The gateway relies on this bound (``IngestSettings.call_timeout_s``) to answer
503 instead of holding a request open on a stalled Redis. The server here is
paused with SIGSTOP (always continued afterwards); the bounds are short so the
tests are quick, and the checks allow for a busy machine on the late side only.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import coredis
import pytest
import trio

from infra.local.redis_server import LocalRedis
from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.adapters.redis_ingest_pipeline import WATCH_TICK_S, IngestSenderStopped
from notifactor.ports.ingest import Accepted, IngestTimedOut, IngestUnavailable
from tests.e2e.test_gateway_rate_limit_lua import _item
from tests.integration.test_redis_ingest_pipeline import GENEROUS, bus_for, sending

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.5
#: How late an answer may be on a busy machine (the watchdog's tick included).
SLACK_S = WATCH_TICK_S + 0.4


@pytest.fixture
def own_redis() -> Iterator[str]:
    """A server of this test's own: it gets paused."""
    server = LocalRedis()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@asynccontextmanager
async def paused(client: coredis.Redis[bytes]) -> AsyncIterator[None]:
    pid = int((await client.info("server"))["process_id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_each_waiting_call_times_out_at_its_own_deadline(own_redis: str) -> None:
    async with open_redis(own_redis) as client:
        bus = bus_for(client, "timeout:", call_timeout_s=TIMEOUT_S)
        async with sending(bus):
            await bus.ingest("t1", GENEROUS, [_item("t1")])  # warm: connected, script loaded
            waited: dict[int, float] = {}

            async def call(index: int) -> None:
                started = trio.current_time()
                with pytest.raises(IngestTimedOut, match=r"did not answer within 0\.5 s"):
                    await bus.ingest("t1", GENEROUS, [_item("t1")])
                waited[index] = trio.current_time() - started

            async with paused(client), trio.open_nursery() as nursery:
                nursery.start_soon(call, 0)  # the first is sent, and stalls
                await trio.sleep(0.2)
                nursery.start_soon(call, 1)  # queued behind the stalled pipeline
            # Neither answered early, and the second was not failed with the first.
            assert set(waited) == {0, 1}
            for index, seconds in waited.items():
                assert TIMEOUT_S <= seconds < TIMEOUT_S + SLACK_S, (index, seconds)
            # Redis back: the bus answers normally again.
            result = await bus.ingest("t1", GENEROUS, [_item("t1")])
            assert isinstance(result.outcomes[0], Accepted)


async def test_calls_that_timed_out_are_not_sent_when_redis_returns(own_redis: str) -> None:
    """A client retries a 503, as ``Retry-After`` tells it to: each retry must not land twice.

    The calls still waiting for the stalled pipeline must not all reach Redis
    when it comes back. Only the call already sent when Redis stalled can
    still land (the README says to retry with the same ``Idempotency-Key``).
    """
    async with open_redis(own_redis) as client:
        bus = bus_for(client, "abandoned:", call_timeout_s=0.3)
        async with sending(bus):
            await bus.ingest("t1", GENEROUS, [_item("t1")])
            refused = 0
            async with paused(client):
                for _ in range(5):
                    try:
                        await bus.ingest("t1", GENEROUS, [_item("t1")])
                    except IngestTimedOut:
                        refused += 1
            # The stalled pipeline completes; then anything still queued would go.
            await bus.ingest("t1", GENEROUS, [_item("t1")])
            length = await client.xlen("abandoned:stream:0")
    assert refused == 5
    # The warm-up, the call in flight when Redis stopped, and the one after.
    assert length == 3


async def test_calls_waiting_for_room_in_a_full_queue_are_bounded_too(own_redis: str) -> None:
    async with open_redis(own_redis) as client:
        bus = bus_for(client, "full:", call_timeout_s=TIMEOUT_S, queue_size=1)
        async with sending(bus):
            await bus.ingest("t1", GENEROUS, [_item("t1")])
            waited: list[float] = []

            async def call() -> None:
                started = trio.current_time()
                with pytest.raises(IngestTimedOut):
                    await bus.ingest("t1", GENEROUS, [_item("t1")])
                waited.append(trio.current_time() - started)

            async with paused(client), trio.open_nursery() as nursery:
                nursery.start_soon(call)  # sent: the sender waits for its stalled pipeline
                await trio.sleep(0.1)
                for _ in range(3):  # one fills the queue, two wait for room in it
                    nursery.start_soon(call)
            assert len(waited) == 4
            assert all(TIMEOUT_S <= s < TIMEOUT_S + SLACK_S for s in waited), waited
            # Redis back: the call in flight lands; the queued one was dropped
            # at its deadline, and the two that waited for room never got in.
            result = await bus.ingest("t1", GENEROUS, [_item("t1")])
            assert isinstance(result.outcomes[0], Accepted)
            assert await client.xlen("full:stream:0") == 3


async def test_an_unpipelined_call_is_bounded_too(own_redis: str) -> None:
    async with open_redis(own_redis) as client:
        settings = IngestSettings(stream_prefix="direct:stream:", call_timeout_s=TIMEOUT_S)
        ingest = RedisIngest(client, settings)
        await ingest.ingest("t1", GENEROUS, [_item("t1")])
        async with paused(client):
            started = trio.current_time()
            with pytest.raises(IngestTimedOut):
                await ingest.ingest("t1", GENEROUS, [_item("t1")])
            assert TIMEOUT_S <= trio.current_time() - started < TIMEOUT_S + SLACK_S


async def test_without_a_running_sender_a_call_fails_at_once(own_redis: str) -> None:
    """Not started yet, or restarting after a crash: no call waits for a sender."""
    async with open_redis(own_redis) as client:
        bus = bus_for(client, "nosender:", call_timeout_s=TIMEOUT_S)
        with (
            trio.fail_after(TIMEOUT_S / 2),
            pytest.raises(IngestSenderStopped, match="not running"),
        ):
            await bus.ingest("t1", GENEROUS, [_item("t1")])
        async with sending(bus):
            result = await bus.ingest("t1", GENEROUS, [_item("t1")])
            assert isinstance(result.outcomes[0], Accepted)
        with trio.fail_after(TIMEOUT_S / 2), pytest.raises(IngestSenderStopped):
            await bus.ingest("t1", GENEROUS, [_item("t1")])


async def test_a_failed_script_reload_fails_its_calls_not_the_sender(
    own_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_redis(own_redis) as client:
        bus = bus_for(client, "reload:", call_timeout_s=TIMEOUT_S)
        async with sending(bus):
            await bus.ingest("t1", GENEROUS, [_item("t1")])
            await client.script_flush()  # the next call gets NOSCRIPT

            async def refused() -> None:
                raise ConnectionError("the server went away during SCRIPT LOAD")

            with monkeypatch.context() as patch:
                patch.setattr(bus._ingest, "load_script", refused)
                with pytest.raises(IngestUnavailable, match="went away"):
                    await bus.ingest("t1", GENEROUS, [_item("t1")])
            # The sender went on: the next call reloads the script and lands.
            result = await bus.ingest("t1", GENEROUS, [_item("t1")])
            assert isinstance(result.outcomes[0], Accepted)
            assert await client.xlen("reload:stream:0") == 2
