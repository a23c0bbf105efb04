"""A burst larger than a session's outbox reaches a client that reads, in order, without 1013."""

from __future__ import annotations

import uuid
from pathlib import Path

import trio

from notifactor.domain.cursor import CursorKind, Position, encode_cursor
from notifactor.domain.routing import ROUTED_FIELD, encode_routed, routed_message
from notifactor.edge.settings import EdgeSettings
from tests.e2e.stores import Storage
from tests.e2e.ws_support import TEST_EDGE, Stack, WsClient, running_stack
from tests.integration.dispatcher_harness import make_envelope

SMALL_OUTBOX = EdgeSettings(
    heartbeat_s=TEST_EDGE.heartbeat_s,
    consumer_block_ms=TEST_EDGE.consumer_block_ms,
    close_timeout_s=TEST_EDGE.close_timeout_s,
    outbox_size=32,
    consumer_count=512,
)
FROM_THE_START = encode_cursor(CursorKind.INBOX, Position(time_us=0, key=""))


async def test_a_burst_bigger_than_the_outbox_reaches_a_reading_client(
    redis_url: str, tmp_path: Path, storage: Storage
) -> None:
    tenant, user = f"t-{uuid.uuid4().hex[:8]}", "bursty"
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    async with running_stack(
        redis_url,
        tmp_path,
        prefix,
        storage=storage,
        settings=SMALL_OUTBOX,
        dispatcher=False,
        http=False,
    ) as stack:
        client = await stack.connect(tenant, user)
        await client.send_json({"type": "subscribe", "channels": ["alerts"]})
        assert (await client.recv_json())["type"] == "subscribed"
        await _burst_reaches(stack, client, tenant, user)


async def test_a_burst_after_the_opening_hold_is_paced_to_a_reading_client(
    redis_url: str, tmp_path: Path
) -> None:
    """The same burst once the hold is over: every frame is paced, none released at once."""
    tenant, user = f"t-{uuid.uuid4().hex[:8]}", "bursty"
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    async with running_stack(
        redis_url, tmp_path, prefix, settings=SMALL_OUTBOX, dispatcher=False, http=False
    ) as stack:
        client = await stack.connect(tenant, user)
        await client.send_json({"type": "resume", "since": FROM_THE_START})  # ends the hold
        assert await client.recv_json() == {"type": "resumed", "count": 0}
        await _burst_reaches(stack, client, tenant, user)


async def _burst_reaches(stack: Stack, client: WsClient, tenant: str, user: str) -> None:
    envelopes = [make_envelope(tenant, user, content=f"n{i}") for i in range(400)]
    stream = stack.keys.gateway_stream(stack.config.instance_id)
    # One transaction: the blocked XREAD wakes to all 400 at once (one batch
    # of up to consumer_count), more than ten outboxes' worth.
    async with stack.redis.pipeline(transaction=True) as pipe:
        for envelope in envelopes:
            pipe.xadd(stream, {ROUTED_FIELD: encode_routed(routed_message(envelope, 1))})
    received: list[str] = []
    with trio.fail_after(30):
        while len(received) < len(envelopes):
            frame = await client.recv_json()
            assert frame["type"] == "notification", frame
            received.append(frame["id"])
    assert received == [e.id for e in envelopes]
    assert client.close_code is None
    await client.close()
