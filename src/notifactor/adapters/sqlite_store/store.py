"""The store itself: the storage port's methods on one SQLite connection.

It composes the package's parts: the connection is opened by
:mod:`~notifactor.adapters.sqlite_store.connection` and used through one
:class:`~notifactor.adapters.sqlite_store.execution.ConnectionRunner`; records
become rows (:mod:`~notifactor.adapters.sqlite_store.rows`) written by
:mod:`~notifactor.adapters.sqlite_store.writes`; reads and listings come from
:mod:`~notifactor.adapters.sqlite_store.reads`.

Retention: every row stores the expiry its tenant's ``retention_days`` gave
it when written, and the tenant's retention now also bounds it. Reads, status
writes and the purge all treat a row as expired once either has passed, so a
lowered retention takes effect on older rows at once, and a raised one leaves
rows already written with their stored expiry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from notifactor.adapters.sqlite_store import reads
from notifactor.adapters.sqlite_store.connection import open_connection
from notifactor.adapters.sqlite_store.execution import ConnectionRunner
from notifactor.adapters.sqlite_store.rows import (
    INSERT_AUDIT,
    INSERT_DLQ,
    INSERT_NOTIFICATION,
    UPSERT_STATUS,
    audit_rows,
    dead_letter_rows,
    notification_rows,
    status_rows,
)
from notifactor.adapters.sqlite_store.writes import delete_expired, write_rows
from notifactor.domain.audit import AuditEvent
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import (
    DeliveryRecord,
    DeliveryUpdate,
    InboxEntry,
    Notification,
    NotificationView,
)
from notifactor.domain.page import Page
from notifactor.domain.retention import retention_cutoff_us
from notifactor.domain.timestamps import to_us, wall_clock_us
from notifactor.ports.notification_store import RetentionPolicy


class SqliteNotificationStore:
    """:class:`~notifactor.ports.notification_store.NotificationStore` on one SQLite file.

    Open with :meth:`open`; close with :meth:`aclose`.
    """

    def __init__(self, connection: sqlite3.Connection, retention_days: RetentionPolicy) -> None:
        self._runner = ConnectionRunner(connection)
        self._retention_days = retention_days

    @classmethod
    async def open(
        cls,
        path: str | Path,
        retention_days: RetentionPolicy,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 5000,
    ) -> SqliteNotificationStore:
        """Open (creating if needed) the database at ``path`` and its schema.

        Args:
            path: the database file; its directory is created.
            retention_days: the tenant policy's ``retention_days`` lookup.
            synchronous: SQLite ``synchronous`` pragma. ``NORMAL`` in WAL mode
                survives a crash of the process (``kill -9``); ``FULL`` also
                survives an OS crash, at one fsync per committed batch.
            busy_timeout_ms: how long a statement waits for a lock held by
                another process before failing with a transient error.
        """
        db = await open_connection(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        return cls(db, retention_days)

    # -- writes ---------------------------------------------------------------

    async def save_notifications(self, notifications: Sequence[Notification]) -> None:
        rows = notification_rows(notifications, self._retention_days, wall_clock_us())
        await write_rows(self._runner, INSERT_NOTIFICATION, rows)

    async def apply_delivery_updates(self, updates: Sequence[DeliveryUpdate]) -> None:
        rows = status_rows(updates, self._retention_days, wall_clock_us())
        await write_rows(self._runner, UPSERT_STATUS, rows)

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        rows = audit_rows(events, self._retention_days, wall_clock_us())
        await write_rows(self._runner, INSERT_AUDIT, rows)

    async def record_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        rows = dead_letter_rows(letters, self._retention_days, wall_clock_us())
        await write_rows(self._runner, INSERT_DLQ, rows)

    # -- reads ----------------------------------------------------------------

    def _read_bounds(self, tenant_id: str) -> tuple[int, int]:
        """(now, the tenant's retention cutoff now): a row must be within both to be read."""
        now_us = wall_clock_us()
        return now_us, retention_cutoff_us(self._retention_days(tenant_id), now_us)

    async def get_notification(
        self, tenant_id: str, notification_id: str
    ) -> NotificationView | None:
        now_us, cutoff_us = self._read_bounds(tenant_id)
        return await reads.get_notification(
            self._runner, tenant_id, notification_id, now_us, cutoff_us
        )

    async def list_deliveries(
        self,
        tenant_id: str,
        *,
        user_id: str | None = None,
        state: DeliveryState | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DeliveryRecord]:
        now_us, cutoff_us = self._read_bounds(tenant_id)
        return await reads.list_deliveries(
            self._runner,
            tenant_id,
            now_us=now_us,
            cutoff_us=cutoff_us,
            user_id=user_id,
            state=state,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )

    async def inbox_after(
        self, tenant_id: str, user_id: str, cursor: str | None, limit: int
    ) -> list[InboxEntry]:
        now_us, cutoff_us = self._read_bounds(tenant_id)
        return await reads.inbox_after(
            self._runner, tenant_id, user_id, cursor, limit, now_us=now_us, cutoff_us=cutoff_us
        )

    async def list_audit(
        self,
        tenant_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        now_us, cutoff_us = self._read_bounds(tenant_id)
        return await reads.list_audit(
            self._runner,
            tenant_id,
            now_us=now_us,
            cutoff_us=cutoff_us,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )

    async def list_dead_letters(
        self,
        tenant_id: str,
        *,
        reason: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DeadLetter]:
        now_us, cutoff_us = self._read_bounds(tenant_id)
        return await reads.list_dead_letters(
            self._runner,
            tenant_id,
            now_us=now_us,
            cutoff_us=cutoff_us,
            reason=reason,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )

    # -- lifecycle ------------------------------------------------------------

    async def purge_expired(self, now: datetime | None = None) -> int:
        now_us = to_us(now) if now is not None else wall_clock_us()
        return await delete_expired(self._runner, now_us, self._retention_days)

    async def ping(self) -> None:
        await self._runner.run(lambda db: db.execute("SELECT 1").fetchone())

    async def aclose(self) -> None:
        await self._runner.aclose()
