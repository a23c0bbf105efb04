"""The audit trail: non-blocking notes, windowed summaries through a real storage writer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
import trio
import trio.testing
from prometheus_client import REGISTRY

from notifactor.actors import ActorRef, StopSignal, run_actor
from notifactor.actors.audit_trail import AuditTrail, running_audit_trail
from notifactor.actors.stop import set_stop_signal
from notifactor.actors.storage_writer import (
    StorageWriter,
    StorageWriterClient,
    StorageWriterConfig,
    WriterMessage,
)
from notifactor.config import AuditConfig
from notifactor.domain.audit import AuditEvent
from notifactor.domain.audit_summary import ACCEPTED, REJECTED, AuditNote
from notifactor.domain.batching import BatchPolicy
from notifactor.ports.notification_store import StoreError

T0 = datetime(2026, 11, 25, tzinfo=UTC)
WINDOW_S = 1.0


class AuditStore:
    """Only what the writer calls for audit events; records when each call happened."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, list[AuditEvent]]] = []

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        await trio.sleep(0.001)
        self.calls.append((trio.current_time(), list(events)))

    async def save_notifications(self, notifications: Sequence[object]) -> None:
        raise AssertionError("not used")

    async def apply_delivery_updates(self, updates: Sequence[object]) -> None:
        raise AssertionError("not used")

    async def record_dead_letters(self, letters: Sequence[object]) -> None:
        raise AssertionError("not used")

    @property
    def events(self) -> list[AuditEvent]:
        return [event for _, events in self.calls for event in events]


async def start_writer(
    nursery: trio.Nursery, store: AuditStore
) -> tuple[StorageWriterClient, StopSignal]:
    """A real storage writer that flushes a lone write at once (group commit)."""
    ref: ActorRef[WriterMessage] = ActorRef("writer", mailbox_size=64)
    stop = StopSignal()
    set_stop_signal(stop)
    config = StorageWriterConfig(
        batch=BatchPolicy(max_items=100, max_age_s=0.01, flush_when_idle=True)
    )
    await nursery.start(run_actor, ref, lambda: StorageWriter(store, config))  # type: ignore[arg-type]
    return StorageWriterClient(ref), stop


def accepted(*ids: str, tenant: str = "acme", subject: str = "alice") -> AuditNote:
    return AuditNote(
        tenant_id=tenant,
        event_type=ACCEPTED,
        subject=subject,
        route="notifications",
        status=202,
        at=T0,
        ids=ids,
        count=len(ids),
    )


def rejected(reason: str = "rate limited", tenant: str = "acme") -> AuditNote:
    return AuditNote(
        tenant_id=tenant,
        event_type=REJECTED,
        subject="alice",
        route="notifications",
        status=429,
        reason=reason,
        at=T0,
    )


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def keyed(events: list[AuditEvent]) -> dict[tuple[str, str, str], AuditEvent]:
    """Events by (tenant, type, reason); fails if a key has more than one event."""
    result = {(e.tenant_id, e.event_type, e.metadata.get("reason", "")): e for e in events}
    assert len(result) == len(events)
    return result


async def test_one_window_gives_one_event_per_key(autojump_clock: trio.testing.MockClock) -> None:
    store = AuditStore()
    written = sample("audit_events_written_total")
    async with trio.open_nursery() as nursery:
        writer, writer_stop = await start_writer(nursery, store)
        async with running_audit_trail(writer, AuditConfig(window_s=WINDOW_S)) as trail:
            start = trio.current_time()
            trail.note(accepted("n1", "n2"))
            await trio.sleep(0.3)
            trail.note(accepted("n3"))
            trail.note(rejected())
            trail.note(rejected())
            trail.note(rejected(tenant="globex"))
            await trio.sleep(0.6)
            assert store.calls == []  # the window is not over yet
            await trio.sleep(0.2)
            assert store.calls, "the window's summary was not written"
            # Written when the window that began with the first note ended.
            assert all(WINDOW_S <= at - start < WINDOW_S + 0.1 for at, _ in store.calls)
            events = keyed(store.events)
            assert set(events) == {
                ("acme", ACCEPTED, ""),
                ("acme", REJECTED, "rate limited"),
                ("globex", REJECTED, "rate limited"),
            }
            assert events["acme", ACCEPTED, ""].metadata["notification_ids"] == ["n1", "n2", "n3"]
            assert events["acme", ACCEPTED, ""].metadata["count"] == 3
            assert events["acme", REJECTED, "rate limited"].metadata["count"] == 2
            assert events["globex", REJECTED, "rate limited"].metadata["count"] == 1
        writer_stop.request()
    assert len(store.events) == 3  # nothing more on stop
    assert sample("audit_events_written_total") == written + 3


async def test_two_windows_give_two_events(autojump_clock: trio.testing.MockClock) -> None:
    store = AuditStore()
    async with trio.open_nursery() as nursery:
        writer, writer_stop = await start_writer(nursery, store)
        async with running_audit_trail(writer, AuditConfig(window_s=WINDOW_S)) as trail:
            start = trio.current_time()
            trail.note(accepted("n1"))
            await trio.sleep(1.5 * WINDOW_S)
            trail.note(accepted("n2"))
            await trio.sleep(1.5 * WINDOW_S)
        writer_stop.request()
    assert [[e.metadata["notification_ids"] for e in events] for _, events in store.calls] == [
        [["n1"]],
        [["n2"]],
    ]
    times = [at - start for at, _ in store.calls]
    assert WINDOW_S <= times[0] < 1.1 * WINDOW_S
    assert 2.5 * WINDOW_S <= times[1] < 2.6 * WINDOW_S


async def test_max_ids_per_event_splits_a_key(autojump_clock: trio.testing.MockClock) -> None:
    store = AuditStore()
    async with trio.open_nursery() as nursery:
        writer, writer_stop = await start_writer(nursery, store)
        config = AuditConfig(window_s=WINDOW_S, max_ids_per_event=2)
        async with running_audit_trail(writer, config) as trail:
            trail.note(accepted("n1", "n2", "n3"))
            trail.note(accepted("n4", "n5"))
            await trio.sleep(2 * WINDOW_S)
        writer_stop.request()
    assert [e.metadata["notification_ids"] for e in store.events] == [
        ["n1", "n2"],
        ["n3", "n4"],
        ["n5"],
    ]


async def test_graceful_stop_writes_queued_notes(autojump_clock: trio.testing.MockClock) -> None:
    store = AuditStore()
    async with trio.open_nursery() as nursery:
        writer, writer_stop = await start_writer(nursery, store)
        start = trio.current_time()
        async with running_audit_trail(writer, AuditConfig(window_s=60.0)) as trail:
            trail.note(accepted("n1"))
            trail.note(accepted("n2"))
            trail.note(rejected())
            await trio.testing.wait_all_tasks_blocked()  # the summarizer is in its window
            trail.note(rejected(tenant="globex"))
        # The block waited for the summarizer, which did not sit out its window.
        assert trio.current_time() - start < 1.0
        writer_stop.request()
    events = keyed(store.events)
    assert events["acme", ACCEPTED, ""].metadata["notification_ids"] == ["n1", "n2"]
    assert events["acme", REJECTED, "rate limited"].metadata["count"] == 1
    assert events["globex", REJECTED, "rate limited"].metadata["count"] == 1


async def test_graceful_stop_before_the_summarizer_took_anything(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = AuditStore()
    async with trio.open_nursery() as nursery:
        writer, writer_stop = await start_writer(nursery, store)
        async with running_audit_trail(writer, AuditConfig(window_s=60.0)) as trail:
            for i in range(5):
                trail.note(accepted(f"n{i}"))
            # No checkpoint: the stop comes before the summarizer ran at all.
        writer_stop.request()
    assert [i for e in store.events for i in e.metadata["notification_ids"]] == [
        f"n{i}" for i in range(5)
    ]


async def test_graceful_stop_with_nothing_noted_writes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = AuditStore()
    async with trio.open_nursery() as nursery:
        writer, writer_stop = await start_writer(nursery, store)
        async with running_audit_trail(writer, AuditConfig(window_s=WINDOW_S)):
            await trio.sleep(5 * WINDOW_S)
        writer_stop.request()
    assert store.calls == []


def test_note_on_a_full_mailbox_is_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    ref: ActorRef[AuditNote] = ActorRef("audit", mailbox_size=1)  # nobody reads it
    trail = AuditTrail(ref)
    dropped = sample("audit_notes_dropped_total")
    noted = sample("audit_notes_total", {"event_type": ACCEPTED})
    with caplog.at_level(logging.WARNING, logger="notifactor.audit"):
        trail.note(accepted("n1"))
        trail.note(accepted("n2"))  # returns at once, no exception
        trail.note(accepted("n3"))
    assert sample("audit_notes_dropped_total") == dropped + 2
    assert sample("audit_notes_total", {"event_type": ACCEPTED}) == noted + 1
    assert ref.statistics().depth == 1
    # Warnings are rate-limited: one for the two drops.
    warnings = [r for r in caplog.records if r.name == "notifactor.audit"]
    assert len(warnings) == 1
    assert "MailboxFull" in warnings[0].getMessage()


def test_note_on_a_closed_ref_is_dropped_and_counted() -> None:
    ref: ActorRef[AuditNote] = ActorRef("audit", mailbox_size=8)
    ref.close()
    trail = AuditTrail(ref)
    dropped = sample("audit_notes_dropped_total")
    noted = sample("audit_notes_total", {"event_type": REJECTED})
    trail.note(rejected())
    assert sample("audit_notes_dropped_total") == dropped + 1
    assert sample("audit_notes_total", {"event_type": REJECTED}) == noted


def test_notes_are_counted_by_event_type() -> None:
    ref: ActorRef[AuditNote] = ActorRef("audit", mailbox_size=8)
    trail = AuditTrail(ref)
    acc = sample("audit_notes_total", {"event_type": ACCEPTED})
    rej = sample("audit_notes_total", {"event_type": REJECTED})
    trail.note(accepted("n1"))
    trail.note(rejected())
    trail.note(rejected())
    assert sample("audit_notes_total", {"event_type": ACCEPTED}) == acc + 1
    assert sample("audit_notes_total", {"event_type": REJECTED}) == rej + 2


def test_drain_nowait_takes_at_most_limit() -> None:
    ref: ActorRef[int] = ActorRef("drain", mailbox_size=8)
    for i in range(5):
        ref.tell_nowait(i)
    inbox = ref.open_inbox(StopSignal())
    assert inbox.drain_nowait(0) == []
    assert inbox.drain_nowait(3) == [0, 1, 2]
    assert ref.statistics().depth == 2
    assert inbox.drain_nowait(3) == [3, 4]
    assert ref.statistics().depth == 0
    assert inbox.drain_nowait(3) == []


def test_drain_nowait_on_an_empty_mailbox() -> None:
    ref: ActorRef[int] = ActorRef("drain", mailbox_size=2)
    assert ref.open_inbox(StopSignal()).drain_nowait(10) == []


def test_drain_nowait_after_the_incarnation_ended_leaves_messages_queued() -> None:
    ref: ActorRef[int] = ActorRef("drain", mailbox_size=4)
    ref.tell_nowait(1)
    inbox = ref.open_inbox(StopSignal())
    inbox.close(None)
    assert inbox.drain_nowait(4) == []
    assert ref.open_inbox(StopSignal()).drain_nowait(4) == [1]  # for the next incarnation


def test_drain_nowait_on_a_closed_mailbox() -> None:
    ref: ActorRef[int] = ActorRef("drain", mailbox_size=4)
    inbox = ref.open_inbox(StopSignal())
    ref.tell_nowait(1)
    ref.close()
    assert inbox.drain_nowait(4) == []


async def test_wait_until_returns_early_on_a_stop_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref: ActorRef[int] = ActorRef("wait", mailbox_size=4)
    stop = StopSignal()
    inbox = ref.open_inbox(stop)

    async def stop_later() -> None:
        await trio.sleep(2.0)
        stop.request()

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_later)
        await inbox.wait_until(start + 60.0)
    assert trio.current_time() - start == pytest.approx(2.0)
    assert stop.registered == 0  # the wait's scope is not left registered


async def test_wait_until_after_a_stop_returns_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stop = StopSignal()
    stop.request()
    inbox = ActorRef[int]("wait", mailbox_size=4).open_inbox(stop)
    start = trio.current_time()
    await inbox.wait_until(start + 60.0)
    assert trio.current_time() == start


async def test_wait_until_sleeps_to_the_deadline_despite_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref: ActorRef[int] = ActorRef("wait", mailbox_size=4)
    stop = StopSignal()
    inbox = ref.open_inbox(stop)

    async def send_later() -> None:
        await trio.sleep(1.0)
        await ref.tell(1)

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_later)
        await inbox.wait_until(start + 5.0)
    assert trio.current_time() - start == pytest.approx(5.0)
    assert stop.registered == 0
    assert inbox.drain_nowait(4) == [1]


async def test_wait_until_does_not_swallow_an_outer_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inbox = ActorRef[int]("wait", mailbox_size=4).open_inbox(StopSignal())
    start = trio.current_time()
    with trio.move_on_after(1.0) as outer:
        await inbox.wait_until(start + 60.0)
        pytest.fail("wait_until returned although the outer scope was cancelled")
    assert outer.cancelled_caught
    assert trio.current_time() - start == pytest.approx(1.0)


class RefusingAuditStore(AuditStore):
    """Refuses the first ``refusals`` audit writes for good (not a transient error)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise StoreError("disk full (injected)")
        await super().append_audit(events)


async def test_events_storage_refuses_are_counted_and_later_windows_still_written(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = RefusingAuditStore(refusals=1)
    failed = sample("audit_events_failed_total")
    written = sample("audit_events_written_total")
    async with trio.open_nursery() as nursery:
        writer, writer_stop = await start_writer(nursery, store)
        async with running_audit_trail(writer, AuditConfig(window_s=WINDOW_S)) as trail:
            trail.note(accepted("lost-1"))
            trail.note(rejected())
            await trio.sleep(WINDOW_S + 0.5)
            trail.note(accepted("kept-1"))
            await trio.sleep(WINDOW_S + 0.5)
        writer_stop.request()
    assert sample("audit_events_failed_total") == failed + 2
    assert sample("audit_events_written_total") == written + 1
    assert [e.metadata["notification_ids"] for e in store.events] == [["kept-1"]]
