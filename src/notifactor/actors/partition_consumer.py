"""The partition consumer: one per stream partition, in every dispatcher process.

It reads its partition through the shared consumer group, and for each entry:

1. decodes the envelope — an entry that is not one goes to the DLQ as
   ``malformed`` and is acknowledged (it never crashes the consumer or blocks
   the partition);
2. persists the notification through the storage writer (stored means
   ``pending``: a first attempt writes no status row) and waits until that is
   durable;
3. routes it to the live gateways of the recipient and records ``delivered``
   (an offline recipient stays ``pending``: no retries);
4. acknowledges the entry (XACK) only then.

A failed attempt (storage or Redis error, every gateway gone, timeout) is a
transient failure: the entry is acknowledged and, atomically with the ack,
scheduled to come back after a backoff (:mod:`notifactor.domain.retry_schedule`)
or, once the tenant's attempts are exhausted, dead-lettered. A refusal by a
full delivery stream is deferred the same way without spending an attempt,
for ``full_stream_patience_s``. Entries of one
user are processed in order within a batch; different users concurrently.

Entries another consumer left pending (it died) are taken over after
``claim_idle_ms`` with XAUTOCLAIM; one delivered more than ``max_deliveries``
times is dead-lettered as ``poison``. On a graceful stop the consumer stops
reading, finishes the batch at hand, acknowledges it and leaves the group.

What follows a failed attempt (retry, deferral, dead letter) lives in
:mod:`notifactor.actors.failed_attempt`, dead-lettering in
:mod:`notifactor.actors.dead_lettering`; what an entry carries (envelope,
attempt history) in :mod:`notifactor.actors.dispatch_entry`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import msgspec
import trio
from opentelemetry.trace import Span

from notifactor.actors.dead_lettering import DeadLetterer
from notifactor.actors.dispatch_entry import (
    AttemptHistory,
    DecodedEntry,
    delivery_update,
    error_text,
)
from notifactor.actors.failed_attempt import FailedAttempts
from notifactor.actors.outage import Outage, only_of
from notifactor.actors.router import Presences, Router
from notifactor.actors.stop import StopSignal, optional_stop_signal
from notifactor.actors.storage_writer import StorageItem, StorageWriterClient
from notifactor.adapters.redis_client import UNAVAILABLE
from notifactor.dispatcher.metrics import (
    DISPATCHED,
    DLQ_CAPACITY,
    DLQ_ENTRIES,
    STREAM_CONSUMER_LAG,
)
from notifactor.dispatcher.settings import DispatcherSettings
from notifactor.domain.delivery_state import STORED_ATTEMPTS, DeliveryState
from notifactor.domain.dlq_entry import DlqReason
from notifactor.domain.envelope import (
    ENVELOPE_FIELD,
    SCHEMA_VERSION,
    decode_envelope,
)
from notifactor.domain.retry_schedule import (
    RetryPolicy,
)
from notifactor.observability.tracing import child_item_spans, end_item_span, start_item_spans
from notifactor.ports.dispatch import DispatchBus, StreamEntry

logger = logging.getLogger(__name__)
# The two outcomes of a finished entry, looked up once.
_DISPATCHED_ROUTED = DISPATCHED.labels(outcome="delivered")
_DISPATCHED_PENDING = DISPATCHED.labels(outcome="pending")

_MAX_ERROR_CHARS = 500


class PartitionConsumer:
    """Consumes one partition stream; a start function for a supervisor.

    Args:
        partition: the partition number.
        consumer: this process's consumer name in the group (its instance id).
        bus: the stream bus.
        router: routes to gateways.
        writer: the storage writer.
        policy_for: the retry policy of a tenant.
        settings: timings and sizes.
        rng: jitter source of retry delays.
    """

    def __init__(
        self,
        *,
        partition: int,
        consumer: str,
        bus: DispatchBus,
        router: Router,
        writer: StorageWriterClient,
        policy_for: Callable[[str], RetryPolicy],
        settings: DispatcherSettings,
        rng: random.Random | None = None,
    ) -> None:
        self.partition = partition
        self.consumer = consumer
        self._bus = bus
        self._router = router
        self._writer = writer
        self._policy_for = policy_for
        self._settings = settings
        self._rng = rng or random.Random()
        self._claim_start = "0-0"
        self._outage = Outage(f"{self._stream_label} stream", logger)
        self._dead_letters = DeadLetterer(
            partition=partition,
            bus=bus,
            writer=writer,
            settings=settings,
            policy_for=policy_for,
            stream_name=self._stream_name,
        )
        self._failures = FailedAttempts(
            partition=partition,
            bus=bus,
            writer=writer,
            policy_for=policy_for,
            settings=settings,
            dead_letters=self._dead_letters,
            rng=self._rng,
        )

    @property
    def _stream_label(self) -> str:
        return f"partition {self.partition}"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume until a graceful stop is requested, then leave the group.

        A reader task fetches the next batch (new entries, claimed entries)
        while the processor handles the current one; the channel between
        them holds one batch, so at most two batches are in this consumer's
        hands at any time. On a stop the reader stops first and the
        processor finishes what was already read, including entries whose
        read the stop interrupted, before the consumer leaves the group.
        """
        await self._bus.ensure_group(self.partition)
        stop = optional_stop_signal()
        task_status.started()
        outage = self._outage
        try:
            while True:
                try:
                    await self._consume(stop)
                    break
                except BaseException as error:
                    # Redis unreachable: wait, then go on from this consumer's
                    # own pending entries (those in hand when it failed).
                    if not only_of(error, UNAVAILABLE):
                        raise
                    await outage.failed(error)
                    if stop is not None and stop.requested:
                        break
        finally:
            with trio.CancelScope(shield=True) as leave_scope:
                leave_scope.deadline = trio.current_time() + 2.0
                try:
                    await self._bus.leave(self.partition, self.consumer)
                except Exception as error:  # leaving is a courtesy; stale consumers are reaped
                    logger.warning("could not leave the group cleanly: %s", error)

    async def _consume(self, stop: StopSignal | None) -> None:
        await self._drain_own_pending()
        send, receive = trio.open_memory_channel[list[StreamEntry]](1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_loop, send, stop)
            # Its own task: the lag gauge keeps following the stream while
            # a batch is stuck (storage down), which is when it matters.
            nursery.start_soon(self._maintenance_loop)
            async with receive:
                async for entries in receive:
                    await self.process_batch(entries)
            nursery.cancel_scope.cancel()  # reading is over: so is maintenance
        # A read cancelled by the stop may have been answered by the
        # server already: those entries are ours now, finish them too.
        await self._drain_own_pending()

    async def _read_loop(
        self, send: trio.MemorySendChannel[list[StreamEntry]], stop: StopSignal | None
    ) -> None:
        async with send:
            next_claim = trio.current_time()
            while stop is None or not stop.requested:
                now = trio.current_time()
                if now >= next_claim:
                    await self._claim_idle(send)
                    next_claim = now + self._settings.claim_interval_s
                entries: list[StreamEntry] = []
                with trio.CancelScope() as read_scope:
                    if stop is not None:
                        stop.register(read_scope)
                    try:
                        entries = await self._bus.read_new(
                            self.partition,
                            self.consumer,
                            count=self._settings.read_count,
                            block_ms=self._settings.block_ms,
                        )
                    finally:
                        if stop is not None:
                            stop.unregister(read_scope)
                self._outage.succeeded()
                if entries:
                    await send.send(entries)

    async def _drain_own_pending(self) -> None:
        """Finish entries this consumer name took before a restart."""
        while True:
            entries = await self._bus.read_own_pending(
                self.partition, self.consumer, count=self._settings.read_count
            )
            if not entries:
                return
            await self.process_batch(entries)

    async def _claim_idle(self, send: trio.MemorySendChannel[list[StreamEntry]]) -> None:
        """Take over entries other consumers left pending (one pass, bounded)."""
        for _ in range(16):
            batch = await self._bus.claim_idle(
                self.partition,
                self.consumer,
                min_idle_ms=self._settings.claim_idle_ms,
                start=self._claim_start,
                count=self._settings.claim_count,
            )
            self._claim_start = batch.next_start
            if batch.deleted_ids:
                await self._bus.ack(self.partition, batch.deleted_ids)
            if batch.entries:
                logger.info("claimed %d idle entries of %s", len(batch.entries), self._stream_label)
                await send.send(list(batch.entries))
            if batch.next_start == "0-0":
                return

    async def _maintenance_loop(self) -> None:
        while True:
            await self._maintain()
            await trio.sleep(self._settings.maintenance_interval_s)

    async def _maintain(self) -> None:
        """Trim acknowledged entries, refresh the lag (and, on partition 0, DLQ) gauges,
        reap stale consumers."""
        try:
            lag = await self._bus.trim_acknowledged(self.partition)
            if lag is not None:
                STREAM_CONSUMER_LAG.labels(partition=str(self.partition)).set(lag)
            if self.partition == 0:  # one reading of the shared DLQ is enough
                length, capacity = await self._bus.dlq_fill()
                DLQ_ENTRIES.set(length)
                DLQ_CAPACITY.set(capacity)
            await self._bus.reap_stale_consumers(
                self.partition, idle_ms=self._settings.stale_consumer_idle_ms, keep=self.consumer
            )
        except Exception as error:  # housekeeping never stops consumption
            logger.warning("maintenance of %s failed: %s", self._stream_label, error)

    async def process_batch(self, entries: list[StreamEntry]) -> None:
        """One delivery attempt for every entry of ``entries``, as a batch.

        The batch costs one durable write (the notifications), one
        presence lookup, one routing script and one more durable write
        (``delivered``) whatever its size, which is what keeps a consumer
        near raw stream speed. Entries keep their stream order within each
        step, so one user's notifications are routed in acceptance order.
        A failure of a whole step fails every entry of the batch; a routing
        failure of one recipient fails only that entry.
        """
        items: list[DecodedEntry] = []
        for entry in entries:
            decoded = _decoded(entry)
            if isinstance(decoded, str):
                await self._dead_letters.malformed(entry, decoded)
                continue
            if decoded.history.dead_reason is not None:
                # Decided earlier; only recording it failed (storage was down).
                await self._dead_letters.dead_letter(
                    decoded,
                    decoded.history.dead_reason,
                    attempts=max(decoded.history.attempts, 1),
                    last_error=decoded.history.last_error,
                )
                continue
            if entry.deliveries > self._settings.max_deliveries:
                await self._dead_letters.dead_letter(
                    decoded,
                    DlqReason.POISON,
                    attempts=max(decoded.history.attempts, 1),
                    last_error=decoded.history.last_error
                    or f"delivered {entry.deliveries} times without being acknowledged",
                )
                continue
            items.append(decoded)
        if not items:
            return
        spans = start_item_spans(
            "dispatch.consume",
            [item.envelope.traceparent for item in items],
            (  # a generator: built only when spans are recorded
                {
                    "notifactor.partition": self.partition,
                    "notifactor.tenant_id": item.envelope.tenant_id,
                    "notifactor.notification_id": item.envelope.id,
                    "notifactor.attempt": item.attempt,
                }
                for item in items
            ),
        )
        errors: list[str | None] = [None] * len(items)
        try:
            await self._attempt(items, spans, errors)
        finally:
            for span, error in zip(spans, errors, strict=True):
                end_item_span(span, error)

    async def _attempt(
        self, items: list[DecodedEntry], spans: list[Span], errors: list[str | None]
    ) -> None:
        # ``retrying`` is recorded only for a failure once the notification is
        # stored: before that (an early presence lookup, the write itself) a
        # status row would stand for a notification storage does not have;
        # such a notification reads as ``accepted`` (the gateway's record)
        # until its retry stores it.
        phase = "storage"
        try:
            with trio.fail_after(self._settings.attempt_timeout_s):
                envelopes = [item.envelope for item in items]
                present: Presences | None = None
                if self._settings.mark_delivered_on_route:
                    # Presence first, so an online recipient costs one state
                    # write (``delivered``) and an offline one none.
                    present = await self._router.lookup(envelopes)
                stored: list[StorageItem] = []
                for item in items:
                    envelope = item.envelope
                    stored.append(envelope.to_notification())
                    online = present is not None and bool(
                        present.get((envelope.tenant_id, envelope.user_id))
                    )
                    # A stored notification reads as ``pending`` until a status
                    # is written (STORED_STATE), so the first attempt writes no
                    # status row; a later one records its attempt count.
                    if not online and item.attempt > STORED_ATTEMPTS:
                        stored.append(
                            delivery_update(envelope, DeliveryState.PENDING, item.attempt)
                        )
                with child_item_spans("dispatch.persist", spans):
                    await self._writer.write(stored)
                phase = "routing"
                with child_item_spans("dispatch.route", spans):
                    if present is None:
                        # Looked up only once the notification is durable: a
                        # session registered before the lookup gets it routed,
                        # one that registers after it finds it in storage.
                        present = await self._router.lookup(envelopes)
                    results = await self._router.route_to(
                        [(item.envelope, item.attempt) for item in items],
                        present,
                        [item.history.routed_to for item in items],
                    )
                phase = "storage"
                # Offline recipients are already ``pending``; a failed route
                # is recorded as ``retrying`` by the retry path.
                if self._settings.mark_delivered_on_route:
                    delivered: list[StorageItem] = [
                        delivery_update(item.envelope, DeliveryState.DELIVERED, item.attempt)
                        for item, result in zip(items, results, strict=True)
                        if result.routed
                    ]
                    if delivered:
                        await self._writer.write(delivered)
        except Exception as error:  # every failed attempt is retried (Cancelled is not caught)
            text = error_text(error)
            for index, item in enumerate(items):
                errors[index] = text
                await self._failures.handle(
                    item, text, record_retrying=phase == "routing", parent=spans[index]
                )
            return
        done: list[str] = []
        for index, (item, result) in enumerate(zip(items, results, strict=True)):
            if result.error is not None:
                errors[index] = result.error
                await self._failures.handle(
                    item,
                    result.error,
                    record_retrying=True,
                    parent=spans[index],
                    refused=result.refused,
                    taken=result.gateways,
                )
                continue
            done.append(item.entry.id)
            spans[index].set_attribute(
                "notifactor.outcome", "routed" if result.routed else "pending"
            )
            (_DISPATCHED_ROUTED if result.routed else _DISPATCHED_PENDING).inc()
        await self._bus.ack(self.partition, done)

    @property
    def _stream_name(self) -> str:
        keys = getattr(self._bus, "keys", None)
        stream = getattr(keys, "stream", None)
        return str(stream(self.partition)) if callable(stream) else f"partition:{self.partition}"


def _decoded(entry: StreamEntry) -> DecodedEntry | str:
    """``entry`` decoded, or why it is malformed (it then goes to the dead letters)."""
    raw = entry.fields.get(ENVELOPE_FIELD)
    try:
        if raw is None:
            raise ValueError(f"the entry has no {ENVELOPE_FIELD!r} field")
        envelope = decode_envelope(raw)
        if envelope.schema_version != SCHEMA_VERSION:
            raise ValueError(f"unknown schema_version {envelope.schema_version}")
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
        return error_text(error)
    return DecodedEntry(entry=entry, envelope=envelope, history=AttemptHistory.of(entry.fields))
