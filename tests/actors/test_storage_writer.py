"""The storage writer actor against an in-memory fake store (autojump clock)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing

from notifactor.actors import ActorCrashed, ActorRef, ActorStopped, StopSignal, run_actor
from notifactor.actors.stop import set_stop_signal
from notifactor.actors.storage_writer import (
    StorageItem,
    StorageWriter,
    StorageWriterClient,
    StorageWriterConfig,
    WriterMessage,
    WriteTicket,
)
from notifactor.domain.audit import AuditEvent
from notifactor.domain.batching import BatchPolicy, RetryPolicy
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.ports.notification_store import StoreError, TransientStoreError

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def note(i: int, tenant: str = "t") -> Notification:
    return Notification(
        tenant_id=tenant,
        id=f"n{i:04d}",
        user_id="u",
        channel="c",
        content="x",
        created_at=T0 + timedelta(seconds=i),
    )


class FakeStore:
    """Records calls; fails the next calls with scripted errors; can block writes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[StorageItem]]] = []
        self.errors: list[Exception] = []
        self.gate: trio.Event | None = None
        self.in_flight = 0
        self.max_in_flight = 0

    async def _call(self, name: str, items: Sequence[StorageItem]) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await trio.sleep(0.001)
            if self.gate is not None:
                await self.gate.wait()
            if self.errors:
                raise self.errors.pop(0)
            self.calls.append((name, list(items)))
        finally:
            self.in_flight -= 1

    async def save_notifications(self, notifications: Sequence[Notification]) -> None:
        await self._call("save", notifications)

    async def apply_delivery_updates(self, updates: Sequence[DeliveryUpdate]) -> None:
        await self._call("updates", updates)

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        await self._call("audit", events)

    async def record_dead_letters(self, letters: Sequence[object]) -> None:
        raise AssertionError("not used")

    @property
    def stored(self) -> list[StorageItem]:
        return [item for _, items in self.calls for item in items]


async def start_writer(
    nursery: trio.Nursery, store: FakeStore, config: StorageWriterConfig, mailbox: int = 8
) -> tuple[StorageWriterClient, StopSignal]:
    ref: ActorRef[WriterMessage] = ActorRef("writer", mailbox_size=mailbox)
    stop = StopSignal()
    set_stop_signal(stop)
    await nursery.start(run_actor, ref, lambda: StorageWriter(store, config))  # type: ignore[arg-type]
    return StorageWriterClient(ref), stop


def config(**changes: object) -> StorageWriterConfig:
    base: dict[str, object] = {
        "batch": BatchPolicy(max_items=4, max_age_s=1.0, max_group_items=2),
        "retry": RetryPolicy(max_attempts=4, base_s=0.1, cap_s=1.0),
    }
    base.update(changes)
    return StorageWriterConfig(**base)  # type: ignore[arg-type]


async def test_flushes_on_size_without_waiting_for_age(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config())
        start = trio.current_time()
        await writer.write([note(i) for i in range(4)])
        assert trio.current_time() - start < 0.5
        # grouped by tenant and kind, at most max_group_items per store call
        assert [len(items) for _, items in store.calls] == [2, 2]
        stop.request()


async def test_flushes_on_age(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config())
        start = trio.current_time()
        ticket = await writer.submit([note(1)])
        await trio.sleep(0.9)
        assert not ticket.done
        assert store.calls == []
        await ticket.wait_durable()
        assert 1.0 <= trio.current_time() - start < 1.1
        assert store.stored == [note(1)]
        stop.request()


async def test_completion_means_durable_and_groups_by_tenant_and_kind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore()
    store.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config())
        upd = DeliveryUpdate(
            tenant_id="t",
            notification_id="n0001",
            recipient_id="u",
            created_at=T0,
            state=DeliveryState.PENDING,
            event_time=T0,
        )
        ticket = await writer.submit([note(1, "a"), note(2, "b"), upd, note(3, "a")])
        await trio.testing.wait_all_tasks_blocked()
        assert not ticket.done  # the store has not finished writing
        store.gate.set()
        await ticket.wait_durable()
        assert sorted((name, [i.tenant_id for i in items]) for name, items in store.calls) == [
            ("save", ["a", "a"]),
            ("save", ["b"]),
            ("updates", ["t"]),
        ]
        stop.request()


async def test_transient_errors_are_retried_with_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore()
    store.errors = [TransientStoreError("timeout"), TransientStoreError("unavailable")]
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config())
        await writer.write([note(i) for i in range(2)] + [note(9, "other"), note(10, "other")])
        assert sorted(i.id for i in store.stored if isinstance(i, Notification)) == [
            "n0000",
            "n0001",
            "n0009",
            "n0010",
        ]
        stop.request()


async def test_transient_errors_reach_the_caller_after_max_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore()
    store.errors = [TransientStoreError(f"down {i}") for i in range(4)]
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config())
        with pytest.raises(TransientStoreError, match="down 3"):
            await writer.write([note(1)])
        await writer.write([note(2)])  # the writer itself is fine
        assert store.stored == [note(2)]
        stop.request()


async def test_a_storage_outage_is_logged_when_it_starts_and_when_it_ends(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Not one warning per retry of every flush: an outage floods nobody's logs."""
    store = FakeStore()
    store.errors = [TransientStoreError(f"down {i}") for i in range(3)]
    caplog.set_level(logging.DEBUG, logger="notifactor.actors.storage_writer")
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config())
        await writer.write([note(1)])
        await writer.write([note(2)])
        stop.request()
    records = [r for r in caplog.records if r.name.endswith("writer")]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert [(r.getMessage(), r.__dict__.get("event")) for r in warnings] == [
        ("storage unreachable, waiting for it: down 0", "storage_unavailable"),
        ("storage reachable again after 3 failed attempts", "storage_available"),
    ]
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    assert debug == [
        "storage write failed (try 1 of 4): down 0",
        "storage write failed (try 2 of 4): down 1",
        "storage write failed (try 3 of 4): down 2",
    ]


async def test_permanent_errors_are_returned_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore()
    store.errors = [StoreError("bad request"), ValueError("bug in a record")]
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config())
        with pytest.raises(StoreError, match="bad request"):
            await writer.write([note(1)])
        with pytest.raises(ValueError, match="bug"):
            await writer.write([note(2)])
        await writer.write([note(3)])
        assert store.stored == [note(3)]
        stop.request()


async def test_graceful_stop_flushes_what_it_holds(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config())
        ticket = await writer.submit([note(1)])
        await trio.testing.wait_all_tasks_blocked()
        stop.request()
        await ticket.wait_durable()
    assert store.stored == [note(1)]


async def test_cancellation_still_finishes_started_writes_within_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore()
    store.gate = trio.Event()
    results: list[str] = []

    async def wait(ticket: object) -> None:
        try:
            await ticket.wait_durable()  # type: ignore[attr-defined]
            results.append("durable")
        except (ActorCrashed, TransientStoreError) as error:
            results.append(type(error).__name__)

    async with trio.open_nursery() as outer, trio.open_nursery() as nursery:
        writer, _ = await start_writer(nursery, store, config(flush_timeout_s=5.0))
        ticket = await writer.submit([note(i) for i in range(4)])
        outer.start_soon(wait, ticket)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()  # kill: the flush is shielded
        outer.start_soon(_open_gate_later, store.gate)
    assert results == ["durable"]
    assert len(store.stored) == 4


async def _open_gate_later(gate: trio.Event) -> None:
    await trio.sleep(1.0)
    gate.set()


async def test_bounded_concurrency(autojump_clock: trio.testing.MockClock) -> None:
    store = FakeStore()
    cfg = config(
        batch=BatchPolicy(max_items=50, max_age_s=0.01, max_group_items=1),
        max_concurrent_writes=3,
    )
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, cfg)
        await writer.write([note(i, tenant=f"t{i}") for i in range(20)])
        await writer.flush()
        assert store.max_in_flight == 3
        assert len(store.stored) == 20
        stop.request()


async def test_flushes_are_measured(autojump_clock: trio.testing.MockClock) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    flushes = sample("storage_writer_flush_items_count")
    items = sample("storage_writer_flush_items_sum")
    timed = sample("storage_writer_flush_duration_seconds_count")
    store = FakeStore()
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config())
        await writer.write([note(i) for i in range(4)])
        stop.request()
    assert sample("storage_writer_flush_items_count") == flushes + 1
    assert sample("storage_writer_flush_items_sum") == items + 4
    assert sample("storage_writer_flush_duration_seconds_count") == timed + 1


async def test_group_commit_flushes_at_once_and_gathers_during_a_flush(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore()
    store.gate = trio.Event()
    policy = BatchPolicy(max_items=100, max_age_s=1.0, max_group_items=100, flush_when_idle=True)
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config(batch=policy))
        start = trio.current_time()
        first = await writer.submit([note(1)])  # nothing running: flushed at once
        await trio.testing.wait_all_tasks_blocked()
        assert store.in_flight == 1
        later = [await writer.submit([note(i)]) for i in range(2, 6)]  # gather meanwhile
        await trio.testing.wait_all_tasks_blocked()
        assert store.in_flight == 1  # held back while the first flush runs
        store.gate.set()
        await first.wait_durable()
        for ticket in later:
            await ticket.wait_durable()
        # Neither waited for the 1 s age: one store call for the first write,
        # one for the four that arrived while it ran.
        assert trio.current_time() - start < 0.1
        assert [len(items) for _, items in store.calls] == [1, 4]
        stop.request()


async def test_without_group_commit_a_lone_write_waits_for_its_age(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FakeStore()
    policy = BatchPolicy(max_items=100, max_age_s=0.5, flush_when_idle=False)
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config(batch=policy))
        start = trio.current_time()
        await writer.write([note(1)])
        assert trio.current_time() - start >= 0.5
        stop.request()


async def test_graceful_stop_writes_what_is_still_queued_in_the_mailbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Writes accepted into the mailbox behind a slow flush are stored on a graceful stop."""
    store = FakeStore()
    store.gate = trio.Event()  # the first flush is slow
    outcomes: dict[int, str] = {}

    async def wait(i: int, ticket: WriteTicket) -> None:
        try:
            await ticket.wait_durable()
            outcomes[i] = "durable"
        except Exception as error:
            outcomes[i] = type(error).__name__

    policy = BatchPolicy(max_items=1, max_age_s=1.0, max_group_items=2)
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as nursery:
            writer, stop = await start_writer(
                nursery, store, config(batch=policy, max_flushes_in_flight=1), mailbox=16
            )
            for i in range(5):
                outer.start_soon(wait, i, await writer.submit([note(i)]))
            flushed: list[str] = []
            outer.start_soon(_flush_and_note, writer, flushed)
            await trio.testing.wait_all_tasks_blocked()
            assert writer.ref.statistics().depth > 0  # queued behind the slow flush
            stop.request()
            store.gate.set()
        writer.ref.close()  # what the supervisor does once the writer has stopped
    assert outcomes == dict.fromkeys(range(5), "durable")
    assert sorted(n.id for n in store.stored) == [note(i).id for i in range(5)]
    assert flushed == ["flushed"]


async def _flush_and_note(writer: StorageWriterClient, flushed: list[str]) -> None:
    try:
        await writer.flush()
    except ActorStopped:
        flushed.append("stopped")
    else:
        flushed.append("flushed")


class TenantGatedStore(FakeStore):
    """Writes of one tenant wait for ``held`` to open; the others go through."""

    def __init__(self, held_tenant: str) -> None:
        super().__init__()
        self.held_tenant = held_tenant
        self.held = trio.Event()

    async def save_notifications(self, notifications: Sequence[Notification]) -> None:
        if notifications[0].tenant_id == self.held_tenant:
            await self.held.wait()
        await super().save_notifications(notifications)


async def test_a_flush_timeout_fails_only_the_writes_it_did_not_store(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = TenantGatedStore(held_tenant="slow")
    outcomes: dict[str, str] = {}

    async def wait(name: str, ticket: WriteTicket) -> None:
        try:
            await ticket.wait_durable()
            outcomes[name] = "durable"
        except TransientStoreError:
            outcomes[name] = "timed out"

    policy = BatchPolicy(max_items=3, max_age_s=1.0, max_group_items=10)
    async with trio.open_nursery() as nursery:
        writer, stop = await start_writer(nursery, store, config(batch=policy, flush_timeout_s=2.0))
        # One flush, two groups: tenant "fast" commits, tenant "slow" hangs.
        tickets = {
            "fast": await writer.submit([note(1, "fast")]),
            "slow": await writer.submit([note(2, "slow")]),
            "both": await writer.submit([note(3, "fast"), note(4, "slow")]),
        }
        with trio.fail_after(5):
            for name, ticket in tickets.items():
                await wait(name, ticket)
        store.held.set()
        stop.request()
    assert outcomes == {"fast": "durable", "slow": "timed out", "both": "timed out"}
    assert [n.id for n in store.stored] == [note(1).id, note(3).id]
