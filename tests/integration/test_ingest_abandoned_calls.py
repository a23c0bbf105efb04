"""An ingest call whose caller gave up (503 at the gateway's deadline) is not sent later.

Redis stalls (the server is paused): the gateway answers 503 after its
deadline, and a client retries, as ``Retry-After`` tells it to. The calls
that were still waiting for the stalled pipeline must not all reach Redis
when it comes back, or each retry becomes one more notification. Only the
call already sent when Redis stalled can still land (the README says to
retry with the same ``Idempotency-Key`` for that one).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from infra.local.redis_server import LocalRedis
from notifactor.adapters.redis_client import open_redis
from notifactor.gateway import problems
from notifactor.gateway.problems import ProblemError
from tests.e2e.test_gateway_rate_limit_lua import _item
from tests.integration.test_redis_ingest_pipeline import GENEROUS, bus_for, sending

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis() -> Iterator[str]:
    """A server of this test's own: it gets paused."""
    server = LocalRedis()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


async def test_calls_abandoned_at_the_deadline_are_not_sent_when_redis_returns(
    own_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(problems, "REDIS_DEADLINE_S", 0.3)
    async with open_redis(own_redis) as client:
        pid = int((await client.info("server"))["process_id"])
        bus = bus_for(client, "abandoned:")
        async with sending(bus):
            await bus.ingest("t1", GENEROUS, [_item("t1")])
            os.kill(pid, signal.SIGSTOP)
            refused = 0
            try:
                for _ in range(5):
                    try:
                        with problems.redis_deadline("ingest"):
                            await bus.ingest("t1", GENEROUS, [_item("t1")])
                    except ProblemError:
                        refused += 1
            finally:
                os.kill(pid, signal.SIGCONT)
            # The stalled pipeline completes; then anything still queued would go.
            await bus.ingest("t1", GENEROUS, [_item("t1")])
            length = await client.xlen("abandoned:stream:0")
    assert refused == 5
    # The warm-up, the call in flight when Redis stopped, and the one after.
    assert length == 3
