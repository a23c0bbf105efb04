"""Reading records back: one notification, the resumable inbox, and the listings.

Each read builds its parameterised query, runs it through the
:class:`~notifactor.adapters.sqlite_store.execution.ConnectionRunner`, and
makes the rows domain objects. Statuses live in their own table, joined to
each notification; a notification without a status row is
:data:`~notifactor.domain.delivery_state.STORED_STATE` (``pending``).

A row past its expiry is never read, whether or not a sweep has deleted it
yet. Expired means either bound: its stored ``expires_us`` (retention when it
was written) is at or before ``now_us``, or its record time is at or before
``cutoff_us`` (:func:`~notifactor.domain.retention.retention_cutoff_us`, the
tenant's retention now). So a lowered retention hides older rows at once,
exactly as status writes (which use the retention now) skip them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import msgspec

from notifactor.adapters.sqlite_store.execution import ConnectionRunner
from notifactor.adapters.sqlite_store.paging import lower_bound, newest_first_page
from notifactor.domain.audit import AuditEvent
from notifactor.domain.cursor import (
    CursorKind,
    Position,
    inbox_cursor,
    inbox_start,
    newest_first_start,
)
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import STORED_STATE, DeliveryState, attempts_read
from notifactor.domain.notification import (
    DeliveryRecord,
    InboxEntry,
    Notification,
    NotificationView,
)
from notifactor.domain.page import Page
from notifactor.domain.timestamps import from_us, to_us
from notifactor.ports.notification_store import check_limit

_NOTIFICATION_COLUMNS: Final = (
    "n.tenant_id, n.id, n.user_id, n.channel, n.content, n.priority, n.metadata, n.created_us"
)
_STATUS_JOIN: Final = (
    "LEFT JOIN delivery_status d ON d.tenant_id = n.tenant_id"
    " AND d.notification_id = n.id AND d.recipient_id = n.user_id"
)


def notification_from_row(row: Sequence[Any]) -> Notification:
    """The notification in the first eight columns (:data:`_NOTIFICATION_COLUMNS`)."""
    tenant_id, nid, user_id, channel, content, priority, metadata, created_us = row[:8]
    return Notification(
        tenant_id=tenant_id,
        id=nid,
        user_id=user_id,
        channel=channel,
        content=content,
        priority=priority,
        metadata=msgspec.json.decode(metadata),
        created_at=from_us(created_us),
    )


async def get_notification(
    runner: ConnectionRunner, tenant_id: str, notification_id: str, now_us: int, cutoff_us: int
) -> NotificationView | None:
    sql = (
        f"SELECT {_NOTIFICATION_COLUMNS}, d.state, d.attempts, d.last_error, d.event_us"
        f" FROM notifications n {_STATUS_JOIN}"
        " WHERE n.tenant_id = ? AND n.id = ? AND n.expires_us > ? AND n.created_us > ?"
    )
    params = (tenant_id, notification_id, now_us, cutoff_us)
    row = await runner.run(lambda db: db.execute(sql, params).fetchone())
    if row is None:
        return None
    notification = notification_from_row(row)
    state, attempts, last_error, event_us = row[8:]
    return NotificationView(
        notification=notification,
        status=DeliveryState(state) if state else STORED_STATE,
        attempts=attempts_read(attempts),
        last_error=last_error or None,
        updated_at=from_us(event_us) if event_us is not None else notification.created_at,
    )


async def list_deliveries(
    runner: ConnectionRunner,
    tenant_id: str,
    *,
    now_us: int,
    cutoff_us: int,
    user_id: str | None,
    state: DeliveryState | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page[DeliveryRecord]:
    check_limit(limit)
    upper = newest_first_start(CursorKind.DELIVERIES, cursor, until)
    where = [
        "n.tenant_id = ?",
        "(n.created_us, n.id, n.user_id) < (?, ?, ?)",
        "n.expires_us > ?",
        "n.created_us > ?",
    ]
    params: list[Any] = [tenant_id, *upper.as_tuple(), now_us, cutoff_us]
    if user_id is not None:
        where.append("n.user_id = ?")
        params.append(user_id)
    if since is not None:
        where.append("n.created_us >= ?")
        params.append(to_us(since))
    if state is not None:
        where.append("coalesce(d.state, ?) = ?")
        params += [STORED_STATE.value, state.value]
    sql = (
        "SELECT n.id, n.user_id, n.channel, n.created_us,"
        " d.state, d.attempts, d.last_error, d.event_us"
        f" FROM notifications n {_STATUS_JOIN} WHERE {' AND '.join(where)}"
        " ORDER BY n.created_us DESC, n.id DESC, n.user_id DESC LIMIT ?"
    )
    params.append(limit + 1)
    rows = await runner.run(lambda db: db.execute(sql, params).fetchall())
    items = tuple(
        DeliveryRecord(
            notification_id=nid,
            user_id=uid,
            channel=channel,
            state=DeliveryState(st) if st else STORED_STATE,
            attempts=attempts_read(attempts),
            last_error=last_error or None,
            updated_at=from_us(event_us if event_us is not None else created_us),
            created_at=from_us(created_us),
        )
        for nid, uid, channel, created_us, st, attempts, last_error, event_us in rows[:limit]
    )
    return newest_first_page(
        CursorKind.DELIVERIES,
        items,
        more=len(rows) > limit,
        position=lambda last: Position(
            time_us=to_us(last.created_at), key=last.notification_id, sub_key=last.user_id
        ),
    )


async def inbox_after(
    runner: ConnectionRunner,
    tenant_id: str,
    user_id: str,
    cursor: str | None,
    limit: int,
    *,
    now_us: int,
    cutoff_us: int,
) -> list[InboxEntry]:
    check_limit(limit)
    after = inbox_start(cursor)
    sql = (
        f"SELECT {_NOTIFICATION_COLUMNS}, d.state, d.event_us FROM notifications n {_STATUS_JOIN}"
        " WHERE n.tenant_id = ? AND n.user_id = ? AND (n.created_us, n.id) > (?, ?)"
        " AND n.created_us > ? AND n.expires_us > ? ORDER BY n.created_us, n.id LIMIT ?"
    )
    params = (tenant_id, user_id, after.time_us, after.key, cutoff_us, now_us, limit)
    rows = await runner.run(lambda db: db.execute(sql, params).fetchall())
    entries = []
    for row in rows:
        notification = notification_from_row(row)
        entries.append(
            InboxEntry(
                notification=notification,
                cursor=inbox_cursor(notification.id, notification.created_at_us),
                state=DeliveryState(row[8]) if row[8] else STORED_STATE,
                state_at_us=row[9] if row[8] else None,
            )
        )
    return entries


async def list_audit(
    runner: ConnectionRunner,
    tenant_id: str,
    *,
    now_us: int,
    cutoff_us: int,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page[AuditEvent]:
    check_limit(limit)
    upper = newest_first_start(CursorKind.AUDIT, cursor, until)
    sql = (
        "SELECT event_id, event_us, event_type, metadata FROM tenant_audit_log"
        " WHERE tenant_id = ? AND (event_us, event_id) < (?, ?) AND event_us >= ?"
        " AND event_us > ? AND expires_us > ? ORDER BY event_us DESC, event_id DESC LIMIT ?"
    )
    params = (
        tenant_id,
        upper.time_us,
        upper.key,
        lower_bound(since),
        cutoff_us,
        now_us,
        limit + 1,
    )
    rows = await runner.run(lambda db: db.execute(sql, params).fetchall())
    items = tuple(
        AuditEvent(
            tenant_id=tenant_id,
            event_id=event_id,
            event_time=from_us(event_us),
            event_type=event_type,
            metadata=msgspec.json.decode(metadata),
        )
        for event_id, event_us, event_type, metadata in rows[:limit]
    )
    return newest_first_page(
        CursorKind.AUDIT,
        items,
        more=len(rows) > limit,
        position=lambda last: Position(time_us=last.event_time_us, key=last.event_id),
    )


async def list_dead_letters(
    runner: ConnectionRunner,
    tenant_id: str,
    *,
    now_us: int,
    cutoff_us: int,
    reason: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page[DeadLetter]:
    check_limit(limit)
    upper = newest_first_start(CursorKind.DLQ, cursor, until)
    where = (
        "tenant_id = ? AND (dead_us, notification_id) < (?, ?) AND dead_us >= ?"
        " AND dead_us > ? AND expires_us > ?"
    )
    params: list[Any] = [
        tenant_id,
        upper.time_us,
        upper.key,
        lower_bound(since),
        cutoff_us,
        now_us,
    ]
    if reason is not None:
        where += " AND reason = ?"
        params.append(reason)
    sql = (
        "SELECT notification_id, user_id, channel, reason, attempts, last_error, trace_id,"
        f" dead_us, created_us FROM dlq WHERE {where}"
        " ORDER BY dead_us DESC, notification_id DESC LIMIT ?"
    )
    params.append(limit + 1)
    rows = await runner.run(lambda db: db.execute(sql, params).fetchall())
    items = tuple(
        DeadLetter(
            tenant_id=tenant_id,
            notification_id=nid,
            user_id=uid,
            channel=channel,
            reason=why,
            attempts=attempts,
            last_error=last_error,
            trace_id=trace_id,
            dead_at=from_us(dead_us),
            created_at=from_us(created_us),
        )
        for nid, uid, channel, why, attempts, last_error, trace_id, dead_us, created_us in rows[
            :limit
        ]
    )
    return newest_first_page(
        CursorKind.DLQ,
        items,
        more=len(rows) > limit,
        position=lambda last: Position(time_us=last.dead_at_us, key=last.notification_id),
    )
