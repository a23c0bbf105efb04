"""Stream → storage → gateway delivery streams, through a running dispatcher."""

from __future__ import annotations

from pathlib import Path

import coredis
import msgspec

from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.dlq_entry import decode_dlq_entry
from notifactor.domain.routing import decode_routed
from tests.integration.dispatcher_harness import (
    make_envelope,
    open_store,
    pending_count,
    running_dispatcher,
)


async def _pending_total(
    harness_redis: coredis.Redis[bytes], streams: list[str], group: str
) -> int:
    total = 0
    for stream in streams:
        total += await pending_count(harness_redis, stream, group)
    return total


async def test_every_notification_ends_delivered_pending_or_dead(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    async with (
        open_store(tmp_path / "n.db") as store,
        running_dispatcher(redis_client, store, redis_prefix) as h,
    ):
        await h.presence.register("tenant-a", "online-1", "gw-1")
        await h.presence.register("tenant-a", "online-1", "gw-2")
        await h.presence.register("tenant-b", "online-2", "gw-2")
        online = [make_envelope("tenant-a", "online-1", content=f"a{i}") for i in range(40)]
        online += [make_envelope("tenant-b", "online-2", content=f"b{i}") for i in range(20)]
        offline = [make_envelope("tenant-a", f"offline-{i % 7}") for i in range(40)]
        for i in range(max(len(online), len(offline))):
            for batch in (online, offline):
                if i < len(batch):
                    await h.publish(batch[i])
        # A malformed entry in the middle of a partition does not block it.
        await h.publish_raw(0, {"envelope": b"{not json"})
        await h.publish_raw(0, {"something": b"else"})
        late = [make_envelope("tenant-a", f"late-{i}") for i in range(8)]
        for envelope in late:
            await h.publish(envelope)

        delivered = await h.wait_states(online, lambda s: s is DeliveryState.DELIVERED)
        pending = await h.wait_states(offline + late, lambda s: s is DeliveryState.PENDING)
        assert len(delivered) == 60
        assert len(pending) == 48

        # Every live gateway of a recipient got each of its notifications once, in order.
        gw1 = [decode_routed(m) for m in await h.gateway_messages("gw-1")]
        gw2 = [decode_routed(m) for m in await h.gateway_messages("gw-2")]
        assert [m.id for m in gw1] == [e.id for e in online[:40]]
        assert [m.id for m in gw2 if m.user_id == "online-1"] == [e.id for e in online[:40]]
        assert [m.id for m in gw2 if m.user_id == "online-2"] == [e.id for e in online[40:]]
        first = gw1[0]
        assert first.content == "a0"
        assert first.attempt == 1
        assert first.cursor
        assert first.traceparent == online[0].traceparent

        dead = [decode_dlq_entry(e["entry"]) for e in await h.wait_dlq_entries(2)]
        assert sorted(d.reason for d in dead) == ["malformed", "malformed"]
        assert all(d.source_stream == h.keys.stream(0) for d in dead)
        raw_kept = [e.get("envelope") for e in await h.dlq_entries()]
        assert b"{not json" in raw_kept

        streams = [h.keys.stream(p) for p in range(h.partitions)]
        assert await _pending_total(redis_client, streams, h.bus.group) == 0


async def test_gateway_that_stopped_heartbeating_gets_nothing(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    async with (
        open_store(tmp_path / "n.db") as store,
        running_dispatcher(redis_client, store, redis_prefix) as h,
    ):
        await h.presence.register("tenant-a", "u", "gw-dead")
        await h.presence.register("tenant-a", "u", "gw-live")
        await redis_client.delete([h.keys.gateway_alive("gw-dead")])  # its TTL ran out
        envelope = make_envelope("tenant-a", "u")
        await h.publish(envelope)
        await h.wait_states([envelope], lambda s: s is DeliveryState.DELIVERED)
        assert len(await h.gateway_messages("gw-live")) == 1
        assert await h.gateway_messages("gw-dead") == []
        assert await h.presence.gateways_for("tenant-a", "u") == frozenset({"gw-live"})
        await h.presence.unregister("tenant-a", "u", "gw-live")
        assert await h.presence.gateways_for("tenant-a", "u") == frozenset()


def test_routed_message_round_trips() -> None:
    envelope = make_envelope(metadata={"k": [1, 2]})
    from notifactor.domain.routing import encode_routed, routed_message

    raw = encode_routed(routed_message(envelope, 2))
    decoded = msgspec.json.decode(raw)
    assert decoded["id"] == envelope.id
    assert decoded["attempt"] == 2
    assert decode_routed(raw).metadata == {"k": [1, 2]}
