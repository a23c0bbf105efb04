"""Reading records back: one notification, the resumable inbox, and the listings.

Rows come back as the driver's named tuples and become domain objects here.
Statuses are written without reading first, so a status row may exist before
(or without) its notification row: such rows are read as "not stored (yet)"
and skipped, and a notification without a status is
:data:`~notifactor.domain.delivery_state.STORED_STATE` (``pending``).

Rows carry the TTL their tenant's ``retention_days`` gave them when written;
reads also hide every row made at or before ``cutoff_us`` (the tenant's
retention now: :func:`~notifactor.domain.retention.retention_cutoff_us`), the
rule writes apply, so a lowered retention hides older rows at once although
their cells stay on disk until their TTL ends.
"""

from __future__ import annotations

from typing import Any

import msgspec

from notifactor.adapters.cassandra_store.bucket_index import (
    AUDIT_SCOPE,
    DELIVERIES_SCOPE,
    DLQ_SCOPE,
    days_oldest_first,
    inbox_scope,
)
from notifactor.adapters.cassandra_store.execution import StatementRunner
from notifactor.adapters.cassandra_store.paging import Listing
from notifactor.domain.audit import AuditEvent
from notifactor.domain.cursor import CursorKind, Position, inbox_cursor, inbox_start
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import STORED_STATE, DeliveryState, attempts_read
from notifactor.domain.notification import (
    DeliveryRecord,
    InboxEntry,
    Notification,
    NotificationView,
)
from notifactor.domain.timestamps import day_bucket, from_us
from notifactor.ports.notification_store import check_limit


async def get_notification(
    runner: StatementRunner, tenant_id: str, notification_id: str, cutoff_us: int
) -> NotificationView | None:
    """The notification with its status; ``None`` if it is not stored for this tenant.

    Also ``None`` when it was made at or before ``cutoff_us`` (past retention).
    """
    rows = await runner.query("select_notification", (tenant_id, notification_id))
    if not rows or rows[0].created_us <= cutoff_us:
        return None
    row = rows[0]
    notification = Notification(
        tenant_id=row.tenant_id,
        id=row.notification_id,
        user_id=row.user_id,
        channel=row.channel,
        content=row.content,
        priority=row.priority,
        metadata=msgspec.json.decode(row.metadata),
        created_at=from_us(row.created_us),
    )
    status_rows = await runner.query(
        "select_status", (tenant_id, notification_id, notification.user_id)
    )
    status = status_rows[0] if status_rows else None
    if status is None or status.state is None:
        return NotificationView(
            notification=notification,
            status=STORED_STATE,
            attempts=attempts_read(status.attempts if status is not None else None),
            last_error=None,
            updated_at=notification.created_at,
        )
    return NotificationView(
        notification=notification,
        status=DeliveryState(status.state),
        attempts=attempts_read(status.attempts),
        last_error=status.last_error or None,
        updated_at=from_us(status.updated_us),
    )


async def inbox_after(
    runner: StatementRunner,
    tenant_id: str,
    user_id: str,
    cursor: str | None,
    limit: int,
    *,
    cutoff_us: int,
) -> list[InboxEntry]:
    """Up to ``limit`` of the user's stored notifications after ``cursor``, oldest first.

    Only those made after ``cutoff_us``: the scan starts there at the earliest.
    """
    check_limit(limit)
    # Every id is non-empty, so after (cutoff + 1, "") means "made after cutoff".
    after = max(
        inbox_start(cursor),
        Position(time_us=cutoff_us + 1, key=""),
        key=lambda p: (p.time_us, p.key),
    )
    days = await days_oldest_first(
        runner, tenant_id, inbox_scope(user_id), day_bucket(max(after.time_us, 0))
    )
    entries: list[InboxEntry] = []
    for day in days:
        position = (
            after if day == day_bucket(max(after.time_us, 0)) else Position(time_us=-1, key="")
        )
        while len(entries) < limit:
            size = limit - len(entries)
            page = await runner.query(
                "inbox_asc_page",
                (tenant_id, user_id, day, position.time_us, position.key, size),
            )
            for r in page:
                if r.content is None:
                    continue  # a status row whose notification is not stored (yet)
                entries.append(
                    InboxEntry(
                        notification=Notification(
                            tenant_id=tenant_id,
                            id=r.notification_id,
                            user_id=user_id,
                            channel=r.channel,
                            content=r.content,
                            priority=r.priority,
                            metadata=msgspec.json.decode(r.metadata),
                            created_at=from_us(r.created_us),
                        ),
                        cursor=inbox_cursor(r.notification_id, r.created_us),
                        state=DeliveryState(r.state) if r.state else STORED_STATE,
                        state_at_us=r.updated_us if r.state else None,
                    )
                )
            if len(page) < size:
                break
            position = Position(time_us=page[-1].created_us, key=page[-1].notification_id)
        if len(entries) >= limit:
            break
    return entries


def deliveries_listing(
    runner: StatementRunner, tenant_id: str, user_id: str | None, state: DeliveryState | None
) -> Listing[DeliveryRecord]:
    """The tenant's deliveries (from its history), or one user's (from their inbox).

    Args:
        state: keep only deliveries in this state.
    """

    def record(row: Any, recipient_id: str) -> DeliveryRecord | None:
        current = DeliveryState(row.state) if row.state else STORED_STATE
        if state is not None and current is not state:
            return None
        has_status = row.state is not None and row.updated_us is not None
        return DeliveryRecord(
            notification_id=row.notification_id,
            user_id=recipient_id,
            channel=row.channel,
            state=current,
            attempts=attempts_read(row.attempts),
            last_error=row.last_error or None,
            updated_at=from_us(row.updated_us if has_status else row.created_us),
            created_at=from_us(row.created_us),
        )

    if user_id is None:
        scope = DELIVERIES_SCOPE

        async def fetch(day: int, at: Position, size: int) -> list[tuple[Position, Any]]:
            rows = await runner.query(
                "history_page", (tenant_id, day, at.time_us, at.key, at.sub_key, size)
            )
            return [
                (
                    Position(time_us=r.created_us, key=r.notification_id, sub_key=r.recipient_id),
                    None if r.channel is None else record(r, r.recipient_id),
                )
                for r in rows
            ]
    else:
        scope = inbox_scope(user_id)

        async def fetch(day: int, at: Position, size: int) -> list[tuple[Position, Any]]:
            rows = await runner.query(
                "inbox_desc_page", (tenant_id, user_id, day, at.time_us, at.key, size)
            )
            return [
                (
                    Position(time_us=r.created_us, key=r.notification_id, sub_key=user_id),
                    None if r.content is None else record(r, user_id),
                )
                for r in rows
            ]

    return Listing(kind=CursorKind.DELIVERIES, scope=scope, fetch=fetch, filtered=state is not None)


def audit_listing(runner: StatementRunner, tenant_id: str) -> Listing[AuditEvent]:
    """The tenant's audit log."""

    async def fetch(day: int, at: Position, size: int) -> list[tuple[Position, Any]]:
        rows = await runner.query("audit_page", (tenant_id, day, at.time_us, at.key, size))
        return [
            (
                Position(time_us=r.event_us, key=r.event_id),
                AuditEvent(
                    tenant_id=tenant_id,
                    event_id=r.event_id,
                    event_time=from_us(r.event_us),
                    event_type=r.event_type,
                    metadata=msgspec.json.decode(r.metadata),
                ),
            )
            for r in rows
        ]

    return Listing(kind=CursorKind.AUDIT, scope=AUDIT_SCOPE, fetch=fetch, filtered=False)


def dead_letter_listing(
    runner: StatementRunner, tenant_id: str, reason: str | None
) -> Listing[DeadLetter]:
    """The tenant's dead letters.

    Args:
        reason: keep only dead letters with this reason.
    """

    async def fetch(day: int, at: Position, size: int) -> list[tuple[Position, Any]]:
        rows = await runner.query("dlq_page", (tenant_id, day, at.time_us, at.key, size))
        return [
            (
                Position(time_us=r.dead_us, key=r.notification_id),
                None
                if reason is not None and r.reason != reason
                else DeadLetter(
                    tenant_id=tenant_id,
                    notification_id=r.notification_id,
                    user_id=r.user_id,
                    channel=r.channel,
                    reason=r.reason,
                    attempts=r.attempts,
                    last_error=r.last_error,
                    trace_id=r.trace_id,
                    dead_at=from_us(r.dead_us),
                    created_at=from_us(r.created_us),
                ),
            )
            for r in rows
        ]

    return Listing(kind=CursorKind.DLQ, scope=DLQ_SCOPE, fetch=fetch, filtered=reason is not None)
