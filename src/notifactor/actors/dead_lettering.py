"""Dead-lettering for the partition consumer: record ``dead``, then DLQ + ack.

A dead letter is first recorded in storage (``dead`` and a ``DeadLetter``
row for the admin index), then appended to the DLQ stream and acknowledged
in one Redis transaction. When storage refuses the record, the entry is
deferred through the retry set with its reason (see :meth:`DeadLetterer._defer`).
A malformed entry goes straight to the DLQ.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import attrs
import trio

from notifactor.actors.dispatch_entry import (
    DecodedEntry,
    delivery_update,
    error_text,
    log_fields,
    trace_id_or_none,
    utc_now,
)
from notifactor.actors.storage_writer import StorageItem, StorageWriterClient
from notifactor.dispatcher.metrics import DISPATCHED, DLQ_EVENTS
from notifactor.dispatcher.settings import DispatcherSettings
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.dlq_entry import DLQ_ENTRY_FIELD, DlqEntry, DlqReason, encode_dlq_entry
from notifactor.domain.envelope import ENVELOPE_FIELD
from notifactor.domain.retry_schedule import RetryPolicy
from notifactor.domain.timestamps import from_us
from notifactor.ports.dispatch import DispatchBus, StreamEntry

logger = logging.getLogger("notifactor.actors.partition_consumer")


class DeadLetterer:
    """Dead-letters the entries of one partition.

    Args:
        partition: the partition number.
        bus: the stream bus (DLQ append + ack, deferral).
        writer: the storage writer (``dead`` and the DeadLetter row).
        settings: ``dead_letter_timeout_s``.
        policy_for: a tenant's retry policy (its ``cap_ms`` paces deferrals).
        stream_name: the partition stream's name, recorded in each DLQ entry.
    """

    def __init__(
        self,
        *,
        partition: int,
        bus: DispatchBus,
        writer: StorageWriterClient,
        settings: DispatcherSettings,
        policy_for: Callable[[str], RetryPolicy],
        stream_name: str,
    ) -> None:
        self.partition = partition
        self._bus = bus
        self._writer = writer
        self._settings = settings
        self._policy_for = policy_for
        self._stream_name = stream_name

    async def dead_letter(
        self, item: DecodedEntry, reason: DlqReason, *, attempts: int, last_error: str
    ) -> None:
        """Record ``dead`` durably, then DLQ + ack atomically; on a storage error leave it pending."""
        envelope, history = item.envelope, item.history
        now = utc_now()
        first = from_us(history.first_attempt_ms * 1000) if history.first_attempt_ms else now
        trace_id = trace_id_or_none(envelope.traceparent)
        records: list[StorageItem] = [
            envelope.to_notification(),
            delivery_update(envelope, DeliveryState.DEAD, attempts, last_error),
            DeadLetter(
                tenant_id=envelope.tenant_id,
                notification_id=envelope.id,
                user_id=envelope.user_id,
                channel=envelope.channel,
                reason=reason.value,
                attempts=attempts,
                last_error=last_error,
                trace_id=trace_id,
                dead_at=now,
                created_at=envelope.accepted_at,
            ),
        ]
        try:
            with trio.fail_after(self._settings.dead_letter_timeout_s):
                await self._writer.write(records)
        except Exception as error:
            await self._defer(item, reason, attempts, last_error, error_text(error))
            return
        dlq = DlqEntry(
            reason=reason.value,
            notification_id=envelope.id,
            tenant_id=envelope.tenant_id,
            user_id=envelope.user_id,
            channel=envelope.channel,
            attempts=attempts,
            last_error=last_error,
            first_attempt_at=first,
            last_attempt_at=now,
            trace_id=trace_id,
            source_stream=self._stream_name,
            source_id=item.entry.id,
            dead_at=now,
        )
        await self._bus.ack_and_dead_letter(
            self.partition,
            item.entry.id,
            {
                DLQ_ENTRY_FIELD: encode_dlq_entry(dlq),
                ENVELOPE_FIELD: item.entry.fields[ENVELOPE_FIELD],
            },
        )
        DLQ_EVENTS.labels(reason=reason.value).inc()
        DISPATCHED.labels(outcome="dead").inc()
        logger.warning(
            "dead-lettered %s (%s) after %d attempts: %s",
            envelope.id,
            reason.value,
            attempts,
            last_error,
            extra={**log_fields(envelope, self.partition), "event": "dead_letter"},
        )

    async def _defer(
        self, item: DecodedEntry, reason: DlqReason, attempts: int, last_error: str, error: str
    ) -> None:
        """Dead-letter later: storage refused the ``dead`` record.

        Left pending, the entry would be claimed again and again while
        storage is down, and each claim counts as a delivery, so it would end
        up dead-lettered as ``poison``. Scheduled like a retry instead (ack +
        retry set, one Redis transaction), it comes back as a fresh entry
        after the tenant's ``retry_cap_ms`` carrying its reason, and is then
        dead-lettered without another attempt.
        """
        now_ms = int(time.time() * 1000)
        delay_ms = self._policy_for(item.envelope.tenant_id).cap_ms
        history = attrs.evolve(
            item.history,
            attempts=attempts,
            first_attempt_ms=item.history.first_attempt_ms or now_ms,
            last_error=last_error,
            dead_reason=reason,
        )
        fields = {ENVELOPE_FIELD: item.entry.fields[ENVELOPE_FIELD], **history.fields()}
        try:
            await self._bus.ack_and_retry_later(
                self.partition, item.entry.id, due_ms=now_ms + delay_ms, fields=fields
            )
        except Exception as redis_error:  # then it stays pending and is claimed again
            logger.warning(
                "could not record dead letter %s (%s) nor defer it; it stays pending: %s; %s",
                item.envelope.id,
                reason.value,
                error,
                redis_error,
                extra=log_fields(item.envelope, self.partition),
            )
            return
        logger.warning(
            "could not record dead letter %s (%s); trying again in %d ms: %s",
            item.envelope.id,
            reason.value,
            delay_ms,
            error,
            extra=log_fields(item.envelope, self.partition),
        )

    async def malformed(self, entry: StreamEntry, error: str) -> None:
        now = utc_now()
        dlq = DlqEntry(
            reason=DlqReason.MALFORMED.value,
            notification_id=None,
            tenant_id=None,
            attempts=1,
            last_error=error,
            first_attempt_at=now,
            last_attempt_at=now,
            trace_id=None,
            source_stream=self._stream_name,
            source_id=entry.id,
            dead_at=now,
        )
        fields = {DLQ_ENTRY_FIELD: encode_dlq_entry(dlq)}
        raw = entry.fields.get(ENVELOPE_FIELD)
        if raw is not None:
            fields[ENVELOPE_FIELD] = raw
        logger.warning("malformed entry %s of partition %d: %s", entry.id, self.partition, error)
        await self._bus.ack_and_dead_letter(self.partition, entry.id, fields)
        DLQ_EVENTS.labels(reason=DlqReason.MALFORMED.value).inc()
        DISPATCHED.labels(outcome="dead").inc()
