"""The rows each record is written as, and the statements that write them.

Each statement's column list and the tuples built for it stand side by side,
so the two orders can be checked at a glance. Every row carries its expiry,
counted from the record's own time by the tenant's ``retention_days``; a
record already past it (a late replay, or a status of an older notification
after the tenant's retention was lowered) gives no row, as on Cassandra. It
is the rule reads apply with the retention in force when they run
(:func:`~notifactor.domain.retention.is_expired`), so no write is dropped for
a row a read still serves.

Delivery statuses merge with a conditional upsert that mirrors
:func:`notifactor.domain.delivery_state.merge`: the stored state is replaced
only by a greater (rank, event time, error) and ``attempts`` keeps the maximum.
Every other record is written once; a replay of it changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import msgspec

from notifactor.adapters.sqlite_rows import MultiRowInsert
from notifactor.domain.audit import AuditEvent
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.domain.retention import expires_at_us
from notifactor.domain.timestamps import to_us
from notifactor.ports.notification_store import RetentionPolicy

Row: TypeAlias = tuple[Any, ...]

INSERT_NOTIFICATION: Final = MultiRowInsert(
    "INSERT INTO notifications (tenant_id, id, user_id, channel, content, priority, metadata,"
    " created_us, expires_us) VALUES",
    9,
    "ON CONFLICT (tenant_id, id) DO NOTHING",
)

# SET expressions all read the row as it was, so each CASE compares old vs new.
# A key twice in one statement merges as two statements would: the second row
# conflicts with the first.
UPSERT_STATUS: Final = MultiRowInsert(
    "INSERT INTO delivery_status (tenant_id, notification_id, recipient_id, state, rank,"
    " event_us, last_error, attempts, expires_us) VALUES",
    9,
    """
ON CONFLICT (tenant_id, notification_id, recipient_id) DO UPDATE SET
    state = CASE WHEN (excluded.rank, excluded.event_us, excluded.last_error)
                      > (rank, event_us, last_error) THEN excluded.state ELSE state END,
    last_error = CASE WHEN (excluded.rank, excluded.event_us, excluded.last_error)
                      > (rank, event_us, last_error) THEN excluded.last_error ELSE last_error END,
    event_us = CASE WHEN (excluded.rank, excluded.event_us, excluded.last_error)
                      > (rank, event_us, last_error) THEN excluded.event_us ELSE event_us END,
    rank = max(rank, excluded.rank),
    attempts = max(attempts, excluded.attempts),
    expires_us = max(expires_us, excluded.expires_us)
WHERE (excluded.rank, excluded.event_us, excluded.last_error) > (rank, event_us, last_error)
   OR excluded.attempts > attempts OR excluded.expires_us > expires_us
""",
)

INSERT_AUDIT: Final = MultiRowInsert(
    "INSERT INTO tenant_audit_log (tenant_id, event_id, event_us, event_type, metadata,"
    " expires_us) VALUES",
    6,
    "ON CONFLICT (tenant_id, event_id) DO NOTHING",
)

INSERT_DLQ: Final = MultiRowInsert(
    "INSERT INTO dlq (tenant_id, dead_us, notification_id, user_id, channel, reason, attempts,"
    " last_error, trace_id, created_us, expires_us) VALUES",
    11,
    "ON CONFLICT (tenant_id, dead_us, notification_id) DO NOTHING",
)


def _expires(retention_days: RetentionPolicy, tenant_id: str, record_time_us: int) -> int:
    return expires_at_us(record_time_us, retention_days(tenant_id))


def _live(rows: list[Row], now_us: int) -> list[Row]:
    """The rows not yet expired at ``now_us`` (each row's expiry is its last column)."""
    return [row for row in rows if row[-1] > now_us]


def notification_rows(
    notifications: Sequence[Notification], retention_days: RetentionPolicy, now_us: int
) -> list[Row]:
    """Rows of :data:`INSERT_NOTIFICATION` not yet expired at ``now_us``."""
    rows = [
        (
            n.tenant_id,
            n.id,
            n.user_id,
            n.channel,
            n.content,
            n.priority,
            msgspec.json.encode(n.metadata).decode(),
            n.created_at_us,
            _expires(retention_days, n.tenant_id, n.created_at_us),
        )
        for n in notifications
    ]
    return _live(rows, now_us)


def status_rows(
    updates: Sequence[DeliveryUpdate], retention_days: RetentionPolicy, now_us: int
) -> list[Row]:
    """Rows of :data:`UPSERT_STATUS` not yet expired; a status expires with its notification."""
    rows: list[Row] = []
    for update in updates:
        status = update.status
        rows.append(
            (
                update.tenant_id,
                update.notification_id,
                update.recipient_id,
                status.state.value,
                status.state.rank,
                status.event_time_us,
                status.last_error,
                status.attempts,
                _expires(retention_days, update.tenant_id, to_us(update.created_at)),
            )
        )
    return _live(rows, now_us)


def audit_rows(
    events: Sequence[AuditEvent], retention_days: RetentionPolicy, now_us: int
) -> list[Row]:
    """Rows of :data:`INSERT_AUDIT` not yet expired at ``now_us``."""
    rows = [
        (
            e.tenant_id,
            e.event_id,
            e.event_time_us,
            e.event_type,
            msgspec.json.encode(e.metadata).decode(),
            _expires(retention_days, e.tenant_id, e.event_time_us),
        )
        for e in events
    ]
    return _live(rows, now_us)


def dead_letter_rows(
    letters: Sequence[DeadLetter], retention_days: RetentionPolicy, now_us: int
) -> list[Row]:
    """Rows of :data:`INSERT_DLQ` not yet expired at ``now_us``."""
    rows = [
        (
            d.tenant_id,
            d.dead_at_us,
            d.notification_id,
            d.user_id,
            d.channel,
            d.reason,
            d.attempts,
            d.last_error,
            d.trace_id,
            to_us(d.created_at),
            _expires(retention_days, d.tenant_id, d.dead_at_us),
        )
        for d in letters
    ]
    return _live(rows, now_us)
