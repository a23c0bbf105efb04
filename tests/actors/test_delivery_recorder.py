"""The edge's DeliveryRecorder: delivered/acked updates batched into a storage writer.

What its docstring promises: sessions hand updates over through a bounded
queue and go on; they reach the storage writer in batches (at most ``batch``
per submission, never one round trip per frame); a second task waits for each
batch to be durable and logs failures; when the queue is full, ``record``
waits; on a graceful stop or a cancellation what is queued is still handed
to the writer. The writer here is the real :class:`StorageWriter`, over the
fake store of its own tests or over real SQLite; a few tests use a fake
writer client to hold a submission in flight.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from notifactor.actors import ActorRef, StopSignal, run_actor
from notifactor.actors.messages import Reply
from notifactor.actors.stop import set_stop_signal
from notifactor.actors.storage_writer import (
    StorageItem,
    StorageWriter,
    StorageWriterClient,
    StorageWriterConfig,
    WriterMessage,
    WriteTicket,
)
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.domain.batching import BatchPolicy
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.edge.delivery_recorder import STOP_BUDGET_S, DeliveryRecorder
from notifactor.ports.notification_store import StoreError
from tests.actors.test_storage_writer import FakeStore

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def update(
    i: int, state: DeliveryState = DeliveryState.DELIVERED, *, at: int = 0
) -> DeliveryUpdate:
    return DeliveryUpdate(
        tenant_id="t",
        notification_id=f"n{i:05d}",
        recipient_id="u",
        created_at=T0 + timedelta(seconds=i),
        state=state,
        event_time=T0 + timedelta(minutes=1, microseconds=at),
    )


class CountingClient(StorageWriterClient):
    """A real writer's client that remembers every submission.

    With ``hold`` set, a submission first waits for it, and neither that wait
    nor the hand-over can be cancelled: a slow hand-over that completes. The
    recorder is then busy, so what is recorded meanwhile stays in its queue.
    """

    def __init__(self, ref: ActorRef[WriterMessage]) -> None:
        super().__init__(ref)
        self.submissions: list[list[StorageItem]] = []
        self.hold: trio.Event | None = None
        self.after_submit: Callable[[], None] | None = None

    async def submit(self, items: Sequence[StorageItem]) -> WriteTicket:
        with trio.CancelScope(shield=self.hold is not None):
            if self.hold is not None:
                await self.hold.wait()
            ticket = await super().submit(items)
        self.submissions.append(list(items))  # only once it is in the writer's mailbox
        if self.after_submit is not None:
            self.after_submit()
        return ticket


@attrs.define
class Running:
    writer: CountingClient
    writer_stop: StopSignal
    recorder: DeliveryRecorder
    recorder_stop: StopSignal
    recorder_scope: trio.CancelScope
    recorder_done: trio.Event


@asynccontextmanager
async def running(
    store: object,
    *,
    queue_size: int = 8192,
    batch: int = 512,
    mailbox: int = 64,
    flushes: int = 4,
) -> AsyncIterator[Running]:
    """A real StorageWriter over ``store`` and a recorder in front of it, each with its stop."""
    async with trio.open_nursery() as nursery:
        ref: ActorRef[WriterMessage] = ActorRef("writer", mailbox_size=mailbox)
        writer_stop = StopSignal()
        set_stop_signal(writer_stop)
        config = StorageWriterConfig(
            batch=BatchPolicy(max_items=256, max_age_s=0.005), max_flushes_in_flight=flushes
        )
        await nursery.start(run_actor, ref, lambda: StorageWriter(store, config))  # type: ignore[arg-type]
        writer = CountingClient(ref)
        recorder = DeliveryRecorder(writer, queue_size=queue_size, batch=batch)
        recorder_stop = StopSignal()
        set_stop_signal(recorder_stop)
        scope = trio.CancelScope()
        done = trio.Event()

        async def run_recorder(*, task_status: trio.TaskStatus[None]) -> None:
            try:
                with scope:
                    await recorder.run(task_status=task_status)
            finally:
                done.set()

        await nursery.start(run_recorder)
        yield Running(writer, writer_stop, recorder, recorder_stop, scope, done)
        recorder_stop.request()
        await done.wait()
        writer_stop.request()


class GatedClient(StorageWriterClient):
    """A fake writer client: each submission waits for ``gate`` (like a full mailbox)."""

    def __init__(self) -> None:
        super().__init__(ActorRef("unused", mailbox_size=1))
        self.gate = trio.Event()
        self.submissions: list[list[StorageItem]] = []

    async def submit(self, items: Sequence[StorageItem]) -> WriteTicket:
        await self.gate.wait()
        self.submissions.append(list(items))
        reply: Reply[None] = Reply()
        reply.send(None)
        return WriteTicket(reply)


def ids(items: Sequence[StorageItem]) -> list[str]:
    return [item.notification_id for item in items if isinstance(item, DeliveryUpdate)]


async def stop_all(r: Running, recorded: int) -> None:
    """Once the writer has all ``recorded`` updates, stop the recorder and flush the writer.

    Waiting first keeps these tests about what the writer got; the stop tests
    below check that a batch in hand when the stop lands is not lost.
    """
    with trio.fail_after(5):
        while sum(len(batch) for batch in r.writer.submissions) < recorded:  # noqa: ASYNC110
            await trio.sleep(0.005)
    r.recorder_stop.request()
    await r.recorder_done.wait()
    await r.writer.flush()


# --- batching ------------------------------------------------------------------


async def test_records_of_many_sessions_reach_the_writer_in_full_batches() -> None:
    store = FakeStore()
    async with running(store, batch=100) as r:
        async with trio.open_nursery() as sessions:
            for i in range(1000):
                sessions.start_soon(r.recorder.record, update(i))
        await stop_all(r, 1000)
        sizes = [len(batch) for batch in r.writer.submissions]
        assert max(sizes) <= 100
        assert len(sizes) <= 12  # 1000 updates, at most 100 per submission
        assert len(store.calls) <= 30  # and the writer batches further into store calls
        assert sorted(ids(store.stored)) == [update(i).notification_id for i in range(1000)]


async def test_records_in_quick_succession_are_not_one_submission_each() -> None:
    # One task recording back to back yields to the recorder at every call, so
    # submissions are small here; still far fewer than the records, and the
    # store sees a handful of calls, not one per update.
    store = FakeStore()
    async with running(store, batch=100) as r:
        for i in range(1000):
            await r.recorder.record(update(i))
        await stop_all(r, 1000)
        assert len(r.writer.submissions) < 1000 / 2
        assert all(len(batch) <= 100 for batch in r.writer.submissions)
        assert len(store.calls) <= 50
        stored = ids(store.stored)
        assert sorted(stored) == [update(i).notification_id for i in range(1000)]  # each once


async def test_record_waits_only_while_the_queue_is_full() -> None:
    writer = GatedClient()
    recorder = DeliveryRecorder(writer, queue_size=4, batch=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        await recorder.record(update(0))
        await trio.testing.wait_all_tasks_blocked()  # the recorder holds it, waiting to submit
        for i in range(1, 5):
            with trio.fail_after(1):
                await recorder.record(update(i))  # room in the queue: returns at once
        assert recorder.queued() == 4
        with trio.move_on_after(0.1) as waited:
            await recorder.record(update(5))
        assert waited.cancelled_caught  # full: the session waits (backpressure)
        writer.gate.set()
        with trio.fail_after(1):
            await recorder.record(update(5))
        await trio.testing.wait_all_tasks_blocked()
        assert recorder.queued() == 0
        assert all(len(batch) <= 2 for batch in writer.submissions)
        submitted = [i for batch in writer.submissions for i in ids(batch)]
        assert submitted == [update(i).notification_id for i in range(6)]  # in order
        nursery.cancel_scope.cancel()


# --- delivered and acked ---------------------------------------------------------


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteNotificationStore]:
    store = await SqliteNotificationStore.open(tmp_path / "recorder.db", lambda _t: 30)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()


def note(i: int) -> Notification:
    return Notification(
        tenant_id="t",
        id=update(i).notification_id,
        user_id="u",
        channel="c",
        content="x",
        created_at=update(i).created_at,
    )


async def status(store: SqliteNotificationStore, i: int) -> str | None:
    view = await store.get_notification("t", update(i).notification_id)
    return None if view is None else view.status.value


async def test_delivered_then_acked_stays_acked_whatever_the_batching(
    sqlite_store: SqliteNotificationStore,
) -> None:
    delivered, acked = DeliveryState.DELIVERED, DeliveryState.ACKED
    async with running(sqlite_store, batch=512) as r:
        await r.writer.write([note(i) for i in range(4)])
        # 0: delivered then acked, back to back (most likely one batch).
        await r.recorder.record(update(0, delivered, at=1))
        await r.recorder.record(update(0, acked, at=2))
        # 1: delivered, stored, and only later acked: two batches.
        await r.recorder.record(update(1, delivered, at=1))
        with trio.fail_after(5):
            while await status(sqlite_store, 1) != "delivered":  # noqa: ASYNC110
                await trio.sleep(0.01)
        await r.recorder.record(update(1, acked, at=2))
        # 2: the ack overtakes the delivered record (another session, a retry):
        #    a late `delivered` never moves it back.
        await r.recorder.record(update(2, acked, at=1))
        with trio.fail_after(5):
            while await status(sqlite_store, 2) != "acked":  # noqa: ASYNC110
                await trio.sleep(0.01)
        await r.recorder.record(update(2, delivered, at=2))
        # 3: only delivered.
        await r.recorder.record(update(3, delivered, at=1))
        await stop_all(r, 7)
        assert [await status(sqlite_store, i) for i in range(4)] == [
            "acked",
            "acked",
            "acked",
            "delivered",
        ]


# --- stopping ------------------------------------------------------------------------


async def queue_behind_a_busy_recorder(r: Running, count: int) -> trio.Event:
    """Record ``count`` updates: the first is being submitted (held), the rest wait in the queue.

    Returns the event that lets the submission in progress complete.
    """
    hold = r.writer.hold = trio.Event()
    await r.recorder.record(update(0))
    await trio.testing.wait_all_tasks_blocked()  # the recorder waits in submit([update 0])
    for i in range(1, count):
        await r.recorder.record(update(i))
    assert r.recorder.queued() == count - 1
    return hold


async def test_a_graceful_stop_hands_over_everything_queued() -> None:
    store = FakeStore()
    async with running(store, batch=64) as r:
        hold = await queue_behind_a_busy_recorder(r, 300)
        r.recorder_stop.request()
        hold.set()
        with trio.fail_after(5):
            await r.recorder_done.wait()
        assert r.recorder.queued() == 0
        # The submission in progress, then the queue, still in batches.
        assert [len(batch) for batch in r.writer.submissions] == [1, 64, 64, 64, 64, 43]
        await r.writer.flush()
        assert sorted(ids(store.stored)) == [update(i).notification_id for i in range(300)]


async def test_a_cancelled_recorder_still_hands_over_what_is_queued() -> None:
    store = FakeStore()
    async with running(store, batch=64) as r:
        hold = await queue_behind_a_busy_recorder(r, 300)
        r.recorder_scope.cancel()  # a kill, not a graceful stop
        hold.set()
        with trio.fail_after(5):
            await r.recorder_done.wait()
        assert r.recorder.queued() == 0
        await r.writer.flush()
        assert sorted(ids(store.stored)) == [update(i).notification_id for i in range(300)]


async def test_a_graceful_stop_while_the_writer_is_backed_up_loses_nothing() -> None:
    # The store is stuck, so the writer (one flush at a time, a one-message
    # mailbox) stops taking messages and the recorder waits in submit with a
    # batch in hand when the stop comes. The store recovers right after; the
    # drain hands over the batch in hand, then what is queued.
    store = FakeStore()
    store.gate = trio.Event()
    async with running(store, batch=4, mailbox=1, flushes=1) as r:
        for i in range(40):
            await r.recorder.record(update(i))
            if i % 4 == 3:
                await trio.sleep(0.02)  # the writer starts a flush: it blocks on the store
        await trio.testing.wait_all_tasks_blocked()
        mailbox = r.writer.ref.statistics()
        assert mailbox.depth == mailbox.capacity  # the recorder is waiting in submit ...
        assert r.recorder.queued() > 0  # ... and more is queued behind it
        r.recorder_stop.request()
        await trio.testing.wait_all_tasks_blocked()
        store.gate.set()
        await r.recorder_done.wait()
        await r.writer.flush()
    assert sorted(ids(store.stored)) == [update(i).notification_id for i in range(40)]


async def test_an_update_recorded_just_before_a_graceful_stop_is_stored() -> None:
    for _ in range(20):
        store = FakeStore()
        async with running(store) as r:
            await r.recorder.record(update(0))
            r.recorder_stop.request()
            await r.recorder_done.wait()
            await r.writer.flush()
        assert ids(store.stored) == [update(0).notification_id]


# --- failures ------------------------------------------------------------------------


async def test_a_batch_that_cannot_be_stored_is_logged_and_later_ones_still_go_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="notifactor.edge.recorder")
    store = FakeStore()
    store.errors = [StoreError("disk full")]
    async with running(store) as r:
        await r.recorder.record(update(0))
        with trio.fail_after(5):
            while "delivery-state update not stored" not in caplog.text:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert "disk full" in caplog.text
        assert not r.recorder_done.is_set()  # the recorder goes on
        await r.recorder.record(update(1))
        await stop_all(r, 2)
        assert ids(store.stored) == [update(1).notification_id]  # 0 stays as it was


async def test_a_writer_gone_at_stop_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="notifactor.edge.recorder")
    store = FakeStore()
    async with running(store, batch=64) as r:
        hold = await queue_behind_a_busy_recorder(r, 10)
        # The submission in progress is the writer's last: its supervisor then
        # retires the address, so the 9 queued updates have nowhere to go.
        r.writer.after_submit = r.writer.ref.close
        r.recorder_stop.request()
        hold.set()
        with trio.fail_after(5):
            await r.recorder_done.wait()  # had run() raised, leaving `running` would re-raise it
        assert "could not hand 9 delivery updates over" in caplog.text
        assert [len(batch) for batch in r.writer.submissions] == [1]


async def test_a_graceful_stop_returns_once_the_last_updates_are_durable() -> None:
    # The store is slow when the stop comes: the recorder does not return
    # (and its supervisor does not move on) until what it submitted is stored.
    store = FakeStore()
    store.gate = trio.Event()
    async with running(store, batch=4) as r:
        for i in range(10):
            await r.recorder.record(update(i))
        await trio.testing.wait_all_tasks_blocked()
        r.recorder_stop.request()
        await trio.testing.wait_all_tasks_blocked()
        assert not r.recorder_done.is_set()  # waiting for the store
        store.gate.set()
        with trio.fail_after(5):
            await r.recorder_done.wait()
        assert sorted(ids(store.stored)) == [update(i).notification_id for i in range(10)]


async def test_an_update_the_store_refuses_during_a_graceful_stop_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="notifactor.edge.recorder")
    store = FakeStore()
    store.gate = trio.Event()
    store.errors = [StoreError("disk full")]
    async with running(store) as r:
        await r.recorder.record(update(0))
        await trio.testing.wait_all_tasks_blocked()
        r.recorder_stop.request()
        store.gate.set()
        with trio.fail_after(5):
            await r.recorder_done.wait()
        assert "delivery-state update not stored: disk full" in caplog.text


async def test_a_graceful_stop_waits_for_the_store_no_longer_than_its_budget(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="notifactor.edge.recorder")
    store = FakeStore()
    store.gate = trio.Event()  # never opens while the recorder stops
    async with running(store) as r:
        await r.recorder.record(update(0))
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        r.recorder_stop.request()
        await r.recorder_done.wait()
        assert trio.current_time() - start == pytest.approx(STOP_BUDGET_S)
        assert "not known to be stored" in caplog.text
        store.gate.set()
