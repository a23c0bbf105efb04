"""The storage writer: an actor that batches storage writes and reports durability.

Callers hand it records and learn when they are durable::

    writer = StorageWriterClient(ref)
    await writer.write([notification])          # returns once stored
    ticket = await writer.submit(updates)       # or: enqueue now ...
    await ticket.wait_durable()                 # ... and wait later

The dispatcher acknowledges a stream entry only after ``write`` (or
``wait_durable``) returned, so a crash anywhere before that leaves the entry
pending and it is delivered again; writes are idempotent, so that is harmless.

Inside, records wait in a buffer until ``max_items`` are there or the oldest
has waited ``max_age_s`` (:class:`~notifactor.domain.batching.BatchPolicy`).
A flush splits the buffer into groups by partition key (by default record kind
and tenant), sends the groups concurrently under a ``trio.CapacityLimiter``,
retries :class:`~notifactor.ports.notification_store.TransientStoreError` with
jittered backoff, and then answers every request of the flush: success, or the
first error that hit one of its records. A few flushes may be in flight at
once; beyond that the actor stops taking messages and callers wait (the
mailbox is bounded).

On a graceful stop the writer takes every write still queued in its mailbox
(accepted, so its caller is waiting for the answer) and flushes it with what
it holds, in one last flush. Every flush runs shielded
from cancellation with a deadline (``flush_timeout_s``), so even a kill lets
writes already started finish or time out instead of being torn in half.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TypeAlias, TypeVar, assert_never

import attrs
import trio

from notifactor.actors.actor import Actor
from notifactor.actors.mailbox import Inbox
from notifactor.actors.messages import Reply
from notifactor.actors.outage import Outage
from notifactor.actors.ref import ActorRef
from notifactor.domain.audit import AuditEvent
from notifactor.domain.batching import BatchBuffer, BatchPolicy, RetryPolicy, group_for_flush
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.observability.metrics import WRITER_FLUSH_DURATION, WRITER_FLUSH_ITEMS
from notifactor.ports.notification_store import NotificationStore, TransientStoreError

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_DRAIN_STEP = 256
"""Messages taken from the mailbox at a time when a graceful stop empties it."""

StorageItem: TypeAlias = Notification | DeliveryUpdate | AuditEvent | DeadLetter
"""Anything the writer persists."""


@attrs.frozen(kw_only=True)
class WriteRequest:
    """Persist ``items``; the reply is answered once all of them are durable."""

    items: tuple[StorageItem, ...]
    reply: Reply[None]


@attrs.frozen(kw_only=True)
class FlushRequest:
    """Flush the buffer now; answered once everything accepted so far is durable or failed.

    The answer does not say which: each write's own ticket does.
    """

    reply: Reply[None]


WriterMessage: TypeAlias = WriteRequest | FlushRequest


def kind_and_tenant(item: StorageItem) -> Hashable:
    """Default partition key: one store call per record kind and tenant."""
    return (type(item).__name__, item.tenant_id)


def kind_only(item: StorageItem) -> Hashable:
    """Partition key for a single-file store (SQLite): one transaction per kind."""
    return type(item).__name__


@attrs.frozen(kw_only=True)
class StorageWriterConfig:
    """Tuning of one writer (``storage_setup.storage_writer_for`` builds it from ``[storage_writer]``).

    Attributes:
        batch: flush thresholds and the largest group per store call.
        retry: retries of transient errors.
        max_concurrent_writes: store calls in flight at once, over all flushes.
        max_flushes_in_flight: flushes running at once; the actor takes no new
            message while this many are running.
        flush_timeout_s: bound on one flush, retries included; also how long a
            cancelled writer waits for writes already started.
    """

    batch: BatchPolicy = attrs.field(factory=BatchPolicy)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    max_concurrent_writes: int = 32
    max_flushes_in_flight: int = 4
    flush_timeout_s: float = 10.0


@attrs.define
class _Pending:
    """One request inside a flush: the first error that hit it, its records not yet written."""

    reply: Reply[None]
    error: Exception | None = None
    unwritten: int = 0


class WriteTicket:
    """A submitted write; :meth:`wait_durable` returns once it is stored."""

    __slots__ = ("_reply",)

    def __init__(self, reply: Reply[None]) -> None:
        self._reply = reply

    @property
    def done(self) -> bool:
        """Whether the outcome (stored or failed) is known."""
        return self._reply.resolved

    async def wait_durable(self) -> None:
        """Wait until every record of the write is durable.

        Raises:
            StoreError: a record could not be stored (transient errors were
                retried first); nothing says which of the others were.
            ActorCrashed | ActorStopped: the writer died before answering.
        """
        await self._reply.wait()


class StorageWriterClient:
    """The caller's side of a storage writer: submit records, await durability."""

    def __init__(self, ref: ActorRef[WriterMessage]) -> None:
        self.ref = ref

    async def submit(self, items: Sequence[StorageItem]) -> WriteTicket:
        """Enqueue ``items`` (waiting while the mailbox is full) and return a ticket."""
        reply: Reply[None] = Reply()
        await self.ref.tell(WriteRequest(items=tuple(items), reply=reply))
        return WriteTicket(reply)

    async def write(self, items: Sequence[StorageItem]) -> None:
        """Store ``items`` and return once they are durable (see :meth:`WriteTicket.wait_durable`)."""
        ticket = await self.submit(items)
        await ticket.wait_durable()

    async def flush(self) -> None:
        """Return once everything submitted before this call is durable or failed."""
        await self.ref.ask(lambda reply: FlushRequest(reply=reply))


class StorageWriter(Actor[WriterMessage]):
    """Batches :data:`StorageItem` writes into a :class:`NotificationStore`."""

    def __init__(
        self,
        store: NotificationStore,
        config: StorageWriterConfig | None = None,
        *,
        partition_key: Callable[[StorageItem], Hashable] = kind_and_tenant,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._config = config or StorageWriterConfig()
        self._partition_key = partition_key
        self._rng = rng or random.Random()
        self._buffer: BatchBuffer[tuple[StorageItem, _Pending]] = BatchBuffer(self._config.batch)
        self._requests_in_buffer: list[_Pending] = []
        self._write_limiter = trio.CapacityLimiter(self._config.max_concurrent_writes)
        self._flush_slots = trio.Semaphore(self._config.max_flushes_in_flight)
        self._in_flight: set[trio.Event] = set()
        # Transient failures since the last write that worked, over all
        # flushes: an outage is logged when it starts and when it ends.
        self._outage = Outage("storage", logger, event="storage")
        self._nursery: trio.Nursery | None = None

    async def handle(self, message: WriterMessage) -> None:
        raise NotImplementedError("StorageWriter overrides run()")  # pragma: no cover

    async def run(self, inbox: Inbox[WriterMessage]) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            flush_replies: list[Reply[None]] = []
            try:
                await self._receive_loop(inbox, nursery)
                if inbox.stop_requested:
                    # Graceful stop: writes already accepted into the mailbox
                    # join the final flush instead of failing with the mailbox.
                    flush_replies = self._accept_queued(inbox)
            finally:
                self._nursery = None
                # Graceful stop or cancellation: hand what we hold to a
                # shielded flush (it enters its shield before any checkpoint).
                if self._buffer.items:
                    self._start_flush_task(nursery, holds_slot=False)
                for reply in flush_replies:
                    nursery.start_soon(self._answer_when_idle, set(self._in_flight), reply)

    def _accept_queued(self, inbox: Inbox[WriterMessage]) -> list[Reply[None]]:
        """Take every queued message without waiting; return the flush requests among them.

        Finite: no checkpoint runs meanwhile, so nobody can queue more.
        """
        flush_replies: list[Reply[None]] = []
        while queued := inbox.drain_nowait(_DRAIN_STEP):
            for message in queued:
                match message:
                    case WriteRequest(items=items, reply=reply):
                        self._accept(items, reply)
                    case FlushRequest(reply=reply):
                        flush_replies.append(reply)
                    case _:
                        assert_never(message)
        return flush_replies

    async def _receive_loop(self, inbox: Inbox[WriterMessage], nursery: trio.Nursery) -> None:
        while True:
            deadline = self._buffer.deadline()
            message: WriterMessage | None = None
            with trio.move_on_at(math.inf if deadline is None else deadline):
                try:
                    message = await inbox.receive()
                except trio.EndOfChannel:
                    return
            match message:
                case None:
                    pass  # the age threshold fired
                case WriteRequest(items=items, reply=reply):
                    self._accept(items, reply)
                case FlushRequest(reply=reply):
                    if self._buffer.items:
                        await self._flush_slots.acquire()
                        self._start_flush_task(nursery, holds_slot=True)
                    nursery.start_soon(self._answer_when_idle, set(self._in_flight), reply)
                case _:
                    assert_never(message)
            if self._buffer.flush_due(trio.current_time(), idle=not self._in_flight):
                await self._flush_slots.acquire()
                self._start_flush_task(nursery, holds_slot=True)

    def _accept(self, items: tuple[StorageItem, ...], reply: Reply[None]) -> None:
        if not items:
            reply.send(None)
            return
        pending = _Pending(reply, unwritten=len(items))
        now = trio.current_time()
        for item in items:
            self._buffer.add((item, pending), now)

    @staticmethod
    async def _answer_when_idle(flushes: set[trio.Event], reply: Reply[None]) -> None:
        for done in flushes:
            await done.wait()
        reply.send(None)

    def _flush_next_at_once(self) -> bool:
        return not self._in_flight and self._buffer.flush_due(trio.current_time(), idle=True)

    def _start_flush_task(self, nursery: trio.Nursery, *, holds_slot: bool) -> None:
        """Start a flush of the whole buffer (the final one on stop takes no slot)."""
        done = trio.Event()
        self._in_flight.add(done)
        nursery.start_soon(self._flush, self._buffer.take(), done, holds_slot)

    async def _flush(
        self,
        entries: list[tuple[StorageItem, _Pending]],
        done: trio.Event,
        holds_slot: bool,
    ) -> None:
        requests = {id(pending): pending for _, pending in entries}
        WRITER_FLUSH_ITEMS.observe(len(entries))
        started = time.perf_counter()
        try:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self._config.flush_timeout_s
                groups = group_for_flush(
                    entries,
                    lambda entry: self._partition_key(entry[0]),
                    self._config.batch.max_group_items,
                )
                async with trio.open_nursery() as groups_nursery:
                    for _, group in groups:
                        groups_nursery.start_soon(self._write_group, group)
            if scope.cancelled_caught:
                # Only requests with records still unwritten: the others are stored.
                error = TransientStoreError(
                    f"storage flush did not finish within {self._config.flush_timeout_s} s"
                )
                for pending in requests.values():
                    if pending.error is None and pending.unwritten:
                        pending.error = error
        finally:
            WRITER_FLUSH_DURATION.observe(time.perf_counter() - started)
            for pending in requests.values():
                if pending.reply.resolved:
                    continue
                if pending.error is None:
                    pending.reply.send(None)
                else:
                    pending.reply.fail(pending.error)
            self._in_flight.discard(done)
            done.set()
            nursery = self._nursery
            if holds_slot and nursery is not None and self._flush_next_at_once():
                # Group commit: what gathered during this flush goes now, in
                # the slot this flush held, instead of waiting for its age.
                self._start_flush_task(nursery, holds_slot=True)
            elif holds_slot:
                self._flush_slots.release()

    async def _write_group(self, group: list[tuple[StorageItem, _Pending]]) -> None:
        items = [item for item, _ in group]
        failures = 0
        while True:
            try:
                async with self._write_limiter:
                    await self._store_items(items)
                self._outage.succeeded()
                for _, pending in group:
                    pending.unwritten -= 1
                return
            except TransientStoreError as error:
                failures += 1
                self._outage.noted(error)
                logger.debug(
                    "storage write failed (try %d of %d): %s",
                    failures,
                    self._config.retry.max_attempts,
                    error,
                )
                if self._config.retry.gives_up_after(failures):
                    self._record_error(group, error)
                    return
                await trio.sleep(self._config.retry.delay(failures, self._rng))
            except Exception as error:  # returned to the callers, not a crash
                self._record_error(group, error)
                return

    @staticmethod
    def _record_error(group: list[tuple[StorageItem, _Pending]], error: Exception) -> None:
        for _, pending in group:
            if pending.error is None:
                pending.error = error

    async def _store_items(self, items: list[StorageItem]) -> None:
        """One store call for a group (all items share a partition key, hence a kind)."""
        first = items[0]
        match first:
            case Notification():
                await self._store.save_notifications(_only(items, Notification))
            case DeliveryUpdate():
                await self._store.apply_delivery_updates(_only(items, DeliveryUpdate))
            case AuditEvent():
                await self._store.append_audit(_only(items, AuditEvent))
            case DeadLetter():
                await self._store.record_dead_letters(_only(items, DeadLetter))
            case _:
                assert_never(first)


def _only(items: list[StorageItem], kind: type[_T]) -> list[_T]:
    out: list[_T] = [item for item in items if isinstance(item, kind)]
    if len(out) != len(items):
        raise TypeError("a partition key must separate record kinds")
    return out
