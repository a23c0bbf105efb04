"""The partition consumer against in-memory ports (fast; the real Redis runs in integration)."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import attrs
import pytest
import trio
import trio.testing

from notifactor.actors import ActorRef, run_actor
from notifactor.actors.failed_attempt import RETRY_LINES_PER_S
from notifactor.actors.partition_consumer import PartitionConsumer
from notifactor.actors.router import Router
from notifactor.actors.stop import StopSignal, set_stop_signal
from notifactor.actors.storage_writer import (
    StorageItem,
    StorageWriter,
    StorageWriterClient,
    WriterMessage,
)
from notifactor.dispatcher.settings import DispatcherSettings
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.dlq_entry import decode_dlq_entry
from notifactor.domain.envelope import Envelope, encode_envelope, new_traceparent
from notifactor.domain.ids import new_notification_id
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.domain.retry_schedule import RetryPolicy
from notifactor.domain.routing import decode_routed
from notifactor.ports.dispatch import ClaimBatch, Handoff, StreamEntry


@attrs.define
class MemoryBus:
    """An in-memory DispatchBus for one partition: enough to drive a consumer."""

    queue: list[StreamEntry] = attrs.field(factory=list)
    pending: dict[str, StreamEntry] = attrs.field(factory=dict)
    acked: list[str] = attrs.field(factory=list)
    retries: list[tuple[str, int, Mapping[str, bytes]]] = attrs.field(factory=list)
    dlq: list[Mapping[str, bytes]] = attrs.field(factory=list)
    routed: list[tuple[str, bytes]] = attrs.field(factory=list)
    alive: set[str] = attrs.field(factory=set)
    left: list[str] = attrs.field(factory=list)
    arrived: trio.Event = attrs.field(factory=trio.Event)
    seq: int = 0

    def add(self, fields: Mapping[str, bytes]) -> str:
        self.seq += 1
        entry_id = f"1-{self.seq}"
        self.queue.append(StreamEntry(id=entry_id, fields=dict(fields)))
        self.arrived.set()
        return entry_id

    async def ensure_group(self, partition: int) -> None:
        pass

    async def read_new(
        self, partition: int, consumer: str, *, count: int, block_ms: int
    ) -> list[StreamEntry]:
        if not self.queue:
            self.arrived = trio.Event()
            with trio.move_on_after(block_ms / 1000):
                await self.arrived.wait()
        taken, self.queue = self.queue[:count], self.queue[count:]
        self.pending.update({e.id: e for e in taken})
        return taken

    async def read_own_pending(
        self, partition: int, consumer: str, *, count: int
    ) -> list[StreamEntry]:
        return []

    async def claim_idle(
        self, partition: int, consumer: str, *, min_idle_ms: int, start: str, count: int
    ) -> ClaimBatch:
        return ClaimBatch(next_start="0-0", entries=(), deleted_ids=())

    async def ack(self, partition: int, ids: Sequence[str]) -> None:
        for entry_id in ids:
            del self.pending[entry_id]
            self.acked.append(entry_id)

    async def ack_and_retry_later(
        self, partition: int, entry_id: str, *, due_ms: int, fields: Mapping[str, bytes]
    ) -> None:
        await self.ack(partition, [entry_id])
        self.retries.append((entry_id, due_ms, fields))

    async def ack_and_dead_letter(
        self, partition: int, entry_id: str, fields: Mapping[str, bytes]
    ) -> None:
        await self.ack(partition, [entry_id])
        self.dlq.append(fields)

    async def route(self, deliveries: Sequence[tuple[str, bytes]]) -> list[Handoff]:
        self.routed += [(g, m) for g, m in deliveries if g in self.alive]
        return [Handoff.TAKEN if g in self.alive else Handoff.GONE for g, _ in deliveries]

    async def promote_due_retries(self, partition: int, *, now_ms: int, limit: int) -> int:
        return 0

    async def trim_acknowledged(self, partition: int) -> int | None:
        return len(self.queue)

    async def dlq_fill(self) -> tuple[int, int]:
        return len(self.dlq), 1000

    async def leave(self, partition: int, consumer: str) -> bool:
        self.left.append(consumer)
        return True

    async def reap_stale_consumers(self, partition: int, *, idle_ms: int, keep: str) -> list[str]:
        return []


@attrs.define
class MemoryPresence:
    sessions: dict[tuple[str, str], set[str]] = attrs.field(factory=dict)

    async def register(self, tenant_id: str, user_id: str, gateway_id: str) -> None:
        self.sessions.setdefault((tenant_id, user_id), set()).add(gateway_id)

    async def unregister(self, tenant_id: str, user_id: str, gateway_id: str) -> None:
        self.sessions.get((tenant_id, user_id), set()).discard(gateway_id)

    async def heartbeat(self, gateway_id: str) -> int:
        return 0

    async def gateways_for(self, tenant_id: str, user_id: str) -> frozenset[str]:
        return frozenset(self.sessions.get((tenant_id, user_id), ()))

    async def gateways_for_many(
        self, recipients: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], frozenset[str]]:
        return {r: await self.gateways_for(*r) for r in recipients}

    async def drop_gateway(self, gateway_id: str) -> None:
        pass


class MemoryStore:
    def __init__(self) -> None:
        self.items: list[StorageItem] = []
        self.fail_next = 0

    async def _add(self, items: Sequence[StorageItem]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ValueError("constraint failed (injected)")
        self.items.extend(items)

    save_notifications = _add
    apply_delivery_updates = _add
    record_dead_letters = _add
    append_audit = _add

    def stored(self, notification_id: str) -> bool:
        return any(isinstance(i, Notification) and i.id == notification_id for i in self.items)

    def states(self, notification_id: str) -> list[DeliveryState]:
        """The statuses written; a stored notification without one reads as ``pending``."""
        return [
            i.state
            for i in self.items
            if isinstance(i, DeliveryUpdate) and i.notification_id == notification_id
        ]


def envelope(user: str = "u1") -> Envelope:
    return Envelope(
        id=new_notification_id(),
        tenant_id="t",
        user_id=user,
        channel="c",
        content="x",
        accepted_at=datetime.now(UTC),
        traceparent=new_traceparent(),
    )


SETTINGS = DispatcherSettings(block_ms=50, attempt_timeout_s=1.0, claim_idle_ms=5_000)
POLICY = RetryPolicy(max_attempts=2, base_ms=100, cap_ms=1_000)


@asynccontextmanager
async def consumer_with(
    store: MemoryStore,
) -> AsyncIterator[tuple[PartitionConsumer, MemoryBus, MemoryPresence]]:
    bus, presence = MemoryBus(), MemoryPresence()
    ref: ActorRef[WriterMessage] = ActorRef("writer", mailbox_size=64)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_actor, ref, lambda: StorageWriter(store))  # type: ignore[arg-type]
        consumer = PartitionConsumer(
            partition=0,
            consumer="me",
            bus=bus,
            router=Router(presence, bus),
            writer=StorageWriterClient(ref),
            policy_for=lambda _tenant: POLICY,
            settings=SETTINGS,
            rng=random.Random(1),
        )
        yield consumer, bus, presence
        nursery.cancel_scope.cancel()


async def test_online_user_is_routed_in_order_and_offline_user_stays_pending() -> None:
    store = MemoryStore()
    async with consumer_with(store) as (consumer, bus, presence):
        await presence.register("t", "on", "gw")
        bus.alive.add("gw")
        online = [envelope("on") for _ in range(5)]
        offline = envelope("off")
        for e in [*online, offline]:
            bus.add({"envelope": encode_envelope(e)})
        await consumer.process_batch(await bus.read_new(0, "me", count=10, block_ms=1))
    assert [decode_routed(m).id for _, m in bus.routed] == [e.id for e in online]
    assert store.states(online[0].id) == [DeliveryState.DELIVERED]
    # Stored and no status written: it reads as pending (STORED_STATE).
    assert store.stored(offline.id)
    assert store.states(offline.id) == []
    assert len(bus.acked) == 6
    assert not bus.pending


async def test_malformed_entry_is_dead_lettered_and_the_batch_goes_on() -> None:
    store = MemoryStore()
    async with consumer_with(store) as (consumer, bus, _presence):
        bad = bus.add({"envelope": b'{"schema_version": 99}'})
        good = envelope()
        bus.add({"envelope": encode_envelope(good)})
        await consumer.process_batch(await bus.read_new(0, "me", count=10, block_ms=1))
    (dead,) = bus.dlq
    entry = decode_dlq_entry(dead["entry"])
    assert entry.reason == "malformed"
    assert entry.source_id == bad
    assert store.stored(good.id)
    assert store.states(good.id) == []
    assert not bus.pending


async def test_maintenance_on_partition_0_reports_how_full_the_dlq_is() -> None:
    from prometheus_client import REGISTRY

    store = MemoryStore()
    async with consumer_with(store) as (consumer, bus, _presence):
        bus.add({"envelope": b"not an envelope"})
        await consumer.process_batch(await bus.read_new(0, "me", count=10, block_ms=1))
        await consumer._maintain()
    assert len(bus.dlq) == 1
    assert REGISTRY.get_sample_value("dlq_entries") == 1
    assert REGISTRY.get_sample_value("dlq_capacity") == 1000


async def test_failure_schedules_a_retry_then_exhaustion_dead_letters() -> None:
    store = MemoryStore()
    async with consumer_with(store) as (consumer, bus, _presence):
        e = envelope()
        store.fail_next = 1
        bus.add({"envelope": encode_envelope(e)})
        await consumer.process_batch(await bus.read_new(0, "me", count=10, block_ms=1))
        ((_, due_ms, fields),) = bus.retries
        assert fields["attempts"] == b"1"
        assert b"injected" in fields["last_error"]
        # Within the full-jitter window of the first retry (base 100 ms).
        assert 0 <= due_ms - int(fields["first_attempt_ms"]) <= 100 + 50
        store.fail_next = 1
        bus.add(fields)  # what the retry scheduler does when it is due
        await consumer.process_batch(await bus.read_new(0, "me", count=10, block_ms=1))
    entry = decode_dlq_entry(bus.dlq[0]["entry"])
    assert entry.reason == "exhausted"
    assert entry.attempts == 2
    assert DeliveryState.DEAD in store.states(e.id)


async def test_failed_attempts_log_a_few_lines_a_second_not_one_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Storage down: every attempt of a batch fails; the log gets a few lines, then a count."""
    store = MemoryStore()
    caplog.set_level(logging.DEBUG, logger="notifactor.actors.partition_consumer")

    def retry_lines() -> list[tuple[int, str]]:
        return [
            (r.levelno, r.getMessage()) for r in caplog.records if "failed, retrying" in r.message
        ]

    async with consumer_with(store) as (consumer, bus, _presence):
        store.fail_next = 1  # the batch's one store call
        for _ in range(12):
            bus.add({"envelope": encode_envelope(envelope())})
        await consumer.process_batch(await bus.read_new(0, "me", count=20, block_ms=1))
        assert len(bus.retries) == 12
        levels = [level for level, _ in retry_lines()]
        assert levels == [logging.INFO] * RETRY_LINES_PER_S + [logging.DEBUG] * (
            12 - RETRY_LINES_PER_S
        )
        await trio.sleep(1.05)  # a new second
        store.fail_next = 1
        bus.add({"envelope": encode_envelope(envelope())})
        await consumer.process_batch(await bus.read_new(0, "me", count=20, block_ms=1))
    level, message = retry_lines()[-1]
    assert level == logging.INFO
    assert message.endswith(
        f"({12 - RETRY_LINES_PER_S} more failed attempts of this partition at debug level"
        " since the last line)"
    )


async def test_graceful_stop_finishes_and_leaves_the_group() -> None:
    store = MemoryStore()
    async with consumer_with(store) as (consumer, bus, _presence):
        stop = StopSignal()

        async def run_supervised(*, task_status: trio.TaskStatus[None]) -> None:
            set_stop_signal(stop)
            await consumer.run(task_status=task_status)

        async with trio.open_nursery() as nursery:
            await nursery.start(run_supervised)
            e = envelope()
            bus.add({"envelope": encode_envelope(e)})
            with trio.fail_after(5):
                while True:
                    if bus.acked:
                        break
                    await trio.sleep(0.01)
            stop.request()
        assert bus.left == ["me"]
        assert store.stored(e.id)


async def test_a_later_attempt_records_pending_with_its_attempt_count() -> None:
    store = MemoryStore()
    async with consumer_with(store) as (consumer, bus, _presence):
        e = envelope("off")
        # As the retry scheduler puts it back after a failed first attempt.
        bus.add({"envelope": encode_envelope(e), "attempts": b"1", "first_attempt_ms": b"1"})
        await consumer.process_batch(await bus.read_new(0, "me", count=10, block_ms=1))
    (update,) = [i for i in store.items if isinstance(i, DeliveryUpdate)]
    assert (update.state, update.attempts) == (DeliveryState.PENDING, 2)
    assert store.stored(e.id)
    assert len(bus.acked) == 1


async def test_the_lag_gauge_follows_the_stream_while_a_batch_is_stuck(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage down: the batch in hand never finishes, the reader holds the next
    ones, and the stream grows. ``stream_consumer_lag`` must keep following it
    (the lag alert depends on it)."""
    from prometheus_client import REGISTRY

    store = MemoryStore()
    async with consumer_with(store) as (consumer, bus, _presence):
        stuck = trio.Event()

        async def never_done(entries: list[StreamEntry]) -> None:
            stuck.set()
            await trio.sleep_forever()

        async def growing_lag(self: MemoryBus, partition: int) -> int:
            return int(trio.current_time() * 1000)  # the stream grows 1,000 entries/s

        consumer.process_batch = never_done  # type: ignore[method-assign]
        monkeypatch.setattr(MemoryBus, "trim_acknowledged", growing_lag)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer.run)
            for _ in range(3):  # one batch in hand, one buffered, one the reader holds
                bus.add({"envelope": encode_envelope(envelope())})
                await trio.sleep(0.5)
            await stuck.wait()
            before = REGISTRY.get_sample_value("stream_consumer_lag", {"partition": "0"})
            await trio.sleep(SETTINGS.maintenance_interval_s * 3)
            after = REGISTRY.get_sample_value("stream_consumer_lag", {"partition": "0"})
            nursery.cancel_scope.cancel()
    assert before is not None
    assert after is not None
    assert after >= before + SETTINGS.maintenance_interval_s * 2 * 1000


async def test_a_retry_is_counted_once_even_when_scheduling_it_fails_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scheduling the retry fails (Redis gone at that moment): the entry stays
    pending and its next attempt schedules it. ``retry_attempts_total`` counts
    the retry once, when it is scheduled."""
    from prometheus_client import REGISTRY

    def retries() -> float:
        return REGISTRY.get_sample_value("retry_attempts_total") or 0.0

    store = MemoryStore()
    async with consumer_with(store) as (consumer, bus, _presence):
        original = MemoryBus.ack_and_retry_later
        calls = 0

        async def fails_once(self: MemoryBus, *args: object, **kwargs: object) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("Redis gone for a moment")
            await original(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(MemoryBus, "ack_and_retry_later", fails_once)
        before = retries()
        bus.add({"envelope": encode_envelope(envelope())})
        entries = await bus.read_new(0, "me", count=10, block_ms=1)
        store.fail_next = 1
        with pytest.raises(ConnectionError):
            await consumer.process_batch(entries)
        assert retries() == before
        store.fail_next = 1
        await consumer.process_batch(list(bus.pending.values()))  # read again, as pending
        assert len(bus.retries) == 1
        assert retries() == before + 1
