"""Replaying dead letters: back into their partition stream, once, audited.

For every matching dead letter, in DLQ order (newest first):

* a malformed entry (no valid envelope) is skipped: there is nothing to deliver;
* a notification past its tenant's retention (accepted at or before now less
  the tenant's ``retention_days`` in force now: the rule storage applies, see
  :func:`notifactor.domain.retention.is_expired`) is skipped as
  ``skipped_expired``: storage no longer serves it, and its content must not
  reach a live session. The DLQ stream keeps whole envelopes, bounded only by
  count, so this check is the only thing between an old one and a gateway;
* a notification storage already reports ``delivered``/``acked`` is skipped —
  replaying it would deliver it twice;
* a dead letter already replayed (a marker set atomically, kept 7 days) is
  skipped — two operators or two clicks do not enqueue it twice;
* otherwise the original envelope is appended to its partition stream as a
  fresh entry (attempts start over) and flows through the dispatcher again.

``dry_run`` reports what would happen and changes nothing. ``rate_per_s``
paces the re-enqueueing so a large replay does not flood the pipeline. After
the run, one audit event per tenant (``dlq.replay`` or ``dlq.replay.dry_run``)
records who replayed what through the store.
"""

from __future__ import annotations

import enum
import logging
import math
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import attrs
import msgspec
import trio

from notifactor.adapters.redis_dlq import DlqFilter, DlqRecord, RedisDeadLetterQueue
from notifactor.domain.audit import AuditEvent
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.envelope import Envelope, decode_envelope
from notifactor.domain.partitioning import partition_for
from notifactor.domain.retention import is_expired
from notifactor.domain.rfc3339 import format_rfc3339
from notifactor.domain.timestamps import to_us, wall_clock_us
from notifactor.ports.notification_store import NotificationStore, RetentionPolicy

_DELIVERED = frozenset({DeliveryState.DELIVERED, DeliveryState.ACKED})


class ReplayAction(enum.StrEnum):
    """What replay did (or would do) with one dead letter."""

    REPLAYED = "replayed"
    WOULD_REPLAY = "would_replay"
    ALREADY_DELIVERED = "skipped_already_delivered"
    ALREADY_REPLAYED = "skipped_already_replayed"
    MALFORMED = "skipped_malformed"
    EXPIRED = "skipped_expired"


@attrs.frozen(kw_only=True)
class ReplayOutcome:
    dlq_id: str
    notification_id: str | None
    tenant_id: str | None
    reason: str
    action: ReplayAction


@attrs.frozen(kw_only=True)
class ReplayReport:
    dry_run: bool
    outcomes: tuple[ReplayOutcome, ...]

    def count(self, action: ReplayAction) -> int:
        return sum(1 for o in self.outcomes if o.action is action)

    def to_jsonable(self) -> dict[str, object]:
        counts: dict[str, int] = defaultdict(int)
        for outcome in self.outcomes:
            counts[outcome.action.value] += 1
        return {
            "dry_run": self.dry_run,
            "counts": dict(counts),
            "items": [
                {
                    "dlq_id": o.dlq_id,
                    "notification_id": o.notification_id,
                    "tenant_id": o.tenant_id,
                    "reason": o.reason,
                    "action": o.action.value,
                }
                for o in self.outcomes
            ],
        }


log = logging.getLogger(__name__)

#: Bound on writing a replay's audit events (also after an interruption).
AUDIT_TIMEOUT_S = 10.0


class ReplayService:
    """Lists and replays dead letters.

    Args:
        dlq: the DLQ stream adapter.
        store: storage (state checks and the audit log).
        partitions: the configured partition count.
        retention_days: the tenant policy's ``retention_days`` lookup (the one
            the store is given): a dead letter past it is not replayed.
    """

    def __init__(
        self,
        dlq: RedisDeadLetterQueue,
        store: NotificationStore,
        *,
        partitions: int,
        retention_days: RetentionPolicy,
    ) -> None:
        self._dlq = dlq
        self._store = store
        self._partitions = partitions
        self._retention_days = retention_days

    async def list(
        self, where: DlqFilter, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[DlqRecord], str | None]:
        """A page of dead letters, newest first (see ``RedisDeadLetterQueue.page``)."""
        return await self._dlq.page(where, limit=limit, cursor=cursor)

    async def replay(
        self,
        where: DlqFilter,
        *,
        dry_run: bool,
        rate_per_s: float = math.inf,
        limit: int = 10_000,
        actor: str = "operator",
    ) -> ReplayReport:
        """Replay up to ``limit`` matching dead letters (see the module docstring)."""
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        interval = 0.0 if math.isinf(rate_per_s) else 1.0 / rate_per_s
        outcomes: list[ReplayOutcome] = []
        cursor: str | None = None
        next_at = trio.current_time()
        try:
            while len(outcomes) < limit:
                records, cursor = await self._dlq.page(
                    where, limit=min(200, limit - len(outcomes)), cursor=cursor
                )
                for record in records:
                    action = await self._replay_one(record, dry_run=dry_run, next_at=next_at)
                    if action is ReplayAction.REPLAYED:
                        next_at = max(next_at, trio.current_time()) + interval
                    outcomes.append(
                        ReplayOutcome(
                            dlq_id=record.stream_id,
                            notification_id=record.entry.notification_id,
                            tenant_id=record.entry.tenant_id,
                            reason=record.entry.reason,
                            action=action,
                        )
                    )
                if cursor is None:
                    break
        except BaseException:
            # Interrupted (Ctrl-C, a client gone, a stop, an error): what was
            # re-enqueued so far is still audited, then the interruption goes on.
            partial = ReplayReport(dry_run=dry_run, outcomes=tuple(outcomes))
            with trio.CancelScope(shield=True), trio.move_on_after(AUDIT_TIMEOUT_S):
                try:
                    await self._audit(partial, where, actor)
                except Exception as error:
                    log.warning("could not audit an interrupted replay: %s", error)
            raise
        report = ReplayReport(dry_run=dry_run, outcomes=tuple(outcomes))
        await self._audit(report, where, actor)
        return report

    async def _replay_one(
        self, record: DlqRecord, *, dry_run: bool, next_at: float
    ) -> ReplayAction:
        if record.envelope is None:
            return ReplayAction.MALFORMED
        try:
            envelope = decode_envelope(record.envelope)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return ReplayAction.MALFORMED
        if envelope.accepted_at.tzinfo is None:
            return ReplayAction.MALFORMED  # no time storage (or a retention check) accepts
        if self._expired(envelope):
            return ReplayAction.EXPIRED
        view = await self._store.get_notification(envelope.tenant_id, envelope.id)
        if view is not None and view.status in _DELIVERED:
            return ReplayAction.ALREADY_DELIVERED
        if dry_run:
            if await self._dlq.was_replayed(record.stream_id):
                return ReplayAction.ALREADY_REPLAYED
            return ReplayAction.WOULD_REPLAY
        await trio.sleep_until(next_at)  # the pace, before anything is written
        partition = partition_for(envelope.tenant_id, envelope.user_id, self._partitions)
        if not await self._dlq.replay_once(record.stream_id, partition, record.envelope):
            return ReplayAction.ALREADY_REPLAYED
        return ReplayAction.REPLAYED

    def _expired(self, envelope: Envelope) -> bool:
        """Whether ``envelope``'s notification is past its tenant's retention now.

        Checked before storage: storage hides an expired notification, which
        would read as "not delivered yet" and let it be replayed.
        """
        retention = self._retention_days(envelope.tenant_id)
        return is_expired(to_us(envelope.accepted_at), retention, wall_clock_us())

    async def _audit(self, report: ReplayReport, where: DlqFilter, actor: str) -> None:
        by_tenant: dict[str, list[ReplayOutcome]] = defaultdict(list)
        for outcome in report.outcomes:
            if outcome.tenant_id is not None:
                by_tenant[outcome.tenant_id].append(outcome)
        if where.tenant_id is not None and where.tenant_id not in by_tenant:
            by_tenant[where.tenant_id] = []
        now = datetime.now(UTC)
        events = [
            AuditEvent(
                tenant_id=tenant_id,
                event_id=str(uuid.uuid4()),
                event_time=now,
                event_type="dlq.replay.dry_run" if report.dry_run else "dlq.replay",
                metadata={
                    "actor": actor,
                    "filter": {
                        "reason": where.reason,
                        "since": format_rfc3339(where.since) if where.since else None,
                        "until": format_rfc3339(where.until) if where.until else None,
                        "ids": sorted(where.ids) if where.ids is not None else None,
                    },
                    "replayed": [
                        o.notification_id
                        for o in outcomes
                        if o.action in (ReplayAction.REPLAYED, ReplayAction.WOULD_REPLAY)
                    ],
                    "skipped": sum(
                        1
                        for o in outcomes
                        if o.action not in (ReplayAction.REPLAYED, ReplayAction.WOULD_REPLAY)
                    ),
                },
            )
            for tenant_id, outcomes in by_tenant.items()
        ]
        if events:
            await self._store.append_audit(events)
