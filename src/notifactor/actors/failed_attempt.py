"""What follows a failed delivery attempt: a retry, a deferral or a dead letter.

* An ordinary failure (storage or Redis error, every gateway gone, timeout)
  spends an attempt: the entry is acknowledged and, atomically with the ack,
  put in the retry set to come back after a backoff, or dead-lettered as
  ``exhausted`` once the tenant's attempts are spent
  (:func:`~notifactor.domain.retry_schedule.after_failure`).
* A refusal by a full delivery stream (a gateway far behind) says nothing
  about the notification: for ``full_stream_patience_s`` after its first
  attempt it is deferred the same way without spending an attempt, with
  growing delays (:func:`~notifactor.domain.retry_schedule.after_refusal`).

Each decision is a ``dispatch.retry`` span under the failed attempt's span.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import attrs
import trio
from opentelemetry.trace import Span

from notifactor.actors.dead_lettering import DeadLetterer
from notifactor.actors.dispatch_entry import (
    AttemptHistory,
    DecodedEntry,
    delivery_update,
    log_fields,
)
from notifactor.actors.storage_writer import StorageWriterClient
from notifactor.dispatcher.metrics import DISPATCHED, RETRY_ATTEMPTS
from notifactor.dispatcher.settings import DispatcherSettings
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.dlq_entry import DlqReason
from notifactor.domain.envelope import ENVELOPE_FIELD, Envelope
from notifactor.domain.log_budget import LogBudget
from notifactor.domain.retry_schedule import (
    Defer,
    GiveUp,
    RetryAt,
    RetryPolicy,
    after_failure,
    after_refusal,
)
from notifactor.observability.tracing import child_item_spans
from notifactor.ports.dispatch import DispatchBus

logger = logging.getLogger("notifactor.actors.partition_consumer")

#: Failed attempts a partition logs at info level per second; more go to debug.
RETRY_LINES_PER_S = 5


class FailedAttempts:
    """Decides and carries out what follows the failed attempts of one partition.

    Args:
        partition: the partition number.
        bus: the stream bus (ack with a retry, the retry set).
        writer: the storage writer (``retrying``).
        policy_for: a tenant's retry policy.
        settings: ``full_stream_patience_s`` and ``dead_letter_timeout_s``.
        dead_letters: dead-lettering of the same partition.
        rng: the jitter source of delays.
    """

    def __init__(
        self,
        *,
        partition: int,
        bus: DispatchBus,
        writer: StorageWriterClient,
        policy_for: Callable[[str], RetryPolicy],
        settings: DispatcherSettings,
        dead_letters: DeadLetterer,
        rng: random.Random,
    ) -> None:
        self.partition = partition
        self._bus = bus
        self._writer = writer
        self._policy_for = policy_for
        self._settings = settings
        self._dead_letters = dead_letters
        self._rng = rng
        # A line per failed attempt, but not a flood when every attempt fails.
        self._retry_lines = LogBudget(per_s=RETRY_LINES_PER_S)

    async def handle(
        self,
        item: DecodedEntry,
        error: str,
        *,
        record_retrying: bool,
        parent: Span,
        refused: bool = False,
        taken: frozenset[str] = frozenset(),
    ) -> None:
        """Schedule the retry (``dispatch.retry`` span), defer, or dead-letter the entry.

        Args:
            refused: the attempt failed only because a delivery stream was full.
            taken: the gateways that took the notification in this attempt;
                the next one routes only to the recipient's other gateways.
        """
        with child_item_spans("dispatch.retry", [parent]) as (span,):
            span.set_attribute("notifactor.attempt", item.attempt)
            span.set_attribute("notifactor.error", error)
            await self._decide(
                item, error, span, record_retrying=record_retrying, refused=refused, taken=taken
            )

    async def _decide(
        self,
        item: DecodedEntry,
        error: str,
        span: Span,
        *,
        record_retrying: bool,
        refused: bool,
        taken: frozenset[str],
    ) -> None:
        envelope, history, attempt = item.envelope, item.history, item.attempt
        policy = self._policy_for(envelope.tenant_id)
        now_ms = int(time.time() * 1000)
        carried = attrs.evolve(
            history,
            first_attempt_ms=history.first_attempt_ms or now_ms,
            last_error=error,
            routed_to=history.routed_to | taken,
        )
        if refused:
            decision = after_refusal(
                policy,
                attempt,
                self._rng,
                deferrals=history.deferrals,
                deferred_ms=history.deferred_ms,
                patience_ms=int(self._settings.full_stream_patience_s * 1000),
            )
        else:
            decision = after_failure(policy, attempt, self._rng)
        match decision:
            case Defer(delay_ms=delay_ms, deferrals=deferrals, deferred_ms=deferred_ms):
                span.set_attribute("notifactor.decision", "defer")
                span.set_attribute("notifactor.retry_delay_ms", delay_ms)
                # The first deferral at info; an overloaded gateway makes many more.
                logger.log(
                    logging.INFO if deferrals == 1 else logging.DEBUG,
                    "delivery of %s deferred %d ms, attempt %d not spent: %s",
                    envelope.id,
                    delay_ms,
                    attempt,
                    error,
                    extra={**log_fields(envelope, self.partition), "reason": error},
                )
                if deferrals == 1:  # once, not at every refusal of an overloaded gateway
                    await self._record_retrying(envelope, attempt, error)
                deferred = attrs.evolve(
                    carried, attempts=attempt - 1, deferrals=deferrals, deferred_ms=deferred_ms
                )
                await self._put_back(item, deferred, due_ms=now_ms + delay_ms)
                DISPATCHED.labels(outcome="deferred").inc()
            case RetryAt(delay_ms=delay_ms):
                span.set_attribute("notifactor.decision", "retry")
                span.set_attribute("notifactor.retry_delay_ms", delay_ms)
                held = self._retry_lines.take(time.monotonic())
                logger.log(
                    logging.DEBUG if held is None else logging.INFO,
                    "attempt %d of %s failed, retrying in %d ms: %s%s",
                    attempt,
                    envelope.id,
                    delay_ms,
                    error,
                    f" ({held} more failed attempts of this partition at debug level"
                    " since the last line)"
                    if held
                    else "",
                    extra={**log_fields(envelope, self.partition), "reason": error},
                )
                # Only when storage works: a ``retrying`` that lands after the
                # outage would outrank the ``pending`` of the successful retry.
                if record_retrying:
                    await self._record_retrying(envelope, attempt, error)
                retried = attrs.evolve(carried, attempts=attempt)
                await self._put_back(item, retried, due_ms=now_ms + delay_ms)
                # Counted once scheduled: a failed put-back leaves the entry
                # pending, and its next attempt decides (and counts) again.
                RETRY_ATTEMPTS.inc()
                DISPATCHED.labels(outcome="retry").inc()
            case GiveUp(attempts=attempts):
                span.set_attribute("notifactor.decision", "dead_letter")
                await self._dead_letters.dead_letter(
                    item, DlqReason.EXHAUSTED, attempts=attempts, last_error=error
                )
            case _:
                raise AssertionError(decision)

    async def _put_back(self, item: DecodedEntry, history: AttemptHistory, *, due_ms: int) -> None:
        """Acknowledge the entry and, in the same transaction, schedule it for ``due_ms``."""
        fields = {ENVELOPE_FIELD: item.entry.fields[ENVELOPE_FIELD], **history.fields()}
        await self._bus.ack_and_retry_later(
            self.partition, item.entry.id, due_ms=due_ms, fields=fields
        )

    async def _record_retrying(self, envelope: Envelope, attempt: int, error: str) -> None:
        with trio.move_on_after(self._settings.dead_letter_timeout_s):
            try:
                await self._writer.write(
                    [delivery_update(envelope, DeliveryState.RETRYING, attempt, error)]
                )
            except Exception as record_error:  # the retry is scheduled regardless
                logger.warning(
                    "could not record retrying of %s: %s",
                    envelope.id,
                    record_error,
                    extra=log_fields(envelope, self.partition),
                )
