"""The embedded store: one SQLite file in WAL mode behind the storage port.

One connection, used by one worker thread at a time (a ``CapacityLimiter`` of
1 around ``trio.to_thread.run_sync``), so SQLite never sees concurrent use and
the Trio loop never blocks on disk. Every query is parameterised. The schema
is created on open.

Delivery statuses merge with a conditional upsert that mirrors
:func:`notifactor.domain.delivery_state.merge`: the stored state is replaced
only by a greater (rank, event time, error) and ``attempts`` keeps the maximum.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec
import trio

from notifactor.adapters.sqlite_rows import MultiRowInsert
from notifactor.domain.audit import AuditEvent
from notifactor.domain.cursor import (
    CursorKind,
    Position,
    decode_cursor,
    encode_cursor,
    inbox_cursor,
)
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import STORED_ATTEMPTS, STORED_STATE, DeliveryState
from notifactor.domain.notification import (
    DeliveryRecord,
    DeliveryUpdate,
    InboxEntry,
    Notification,
    NotificationView,
)
from notifactor.domain.page import Page
from notifactor.domain.retention import expires_at_us
from notifactor.domain.timestamps import from_us, to_us
from notifactor.ports.notification_store import (
    RetentionPolicy,
    StoreError,
    TransientStoreError,
    check_limit,
)

T = TypeVar("T")

SCHEMA_VERSION: Final = 1
# Large enough to be "no upper bound" for any position compare.
_MAX_US: Final = (1 << 62) - 1
_TRANSIENT_MESSAGES: Final = ("database is locked", "database table is locked", "busy")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY, applied_at_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    tenant_id TEXT NOT NULL, id TEXT NOT NULL, user_id TEXT NOT NULL, channel TEXT NOT NULL,
    content TEXT NOT NULL, priority TEXT NOT NULL, metadata TEXT NOT NULL,
    created_us INTEGER NOT NULL, expires_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notifications_by_time ON notifications (tenant_id, created_us, id);
CREATE INDEX IF NOT EXISTS notifications_by_user
    ON notifications (tenant_id, user_id, created_us, id);
CREATE INDEX IF NOT EXISTS notifications_by_expiry ON notifications (expires_us);
CREATE TABLE IF NOT EXISTS delivery_status (
    tenant_id TEXT NOT NULL, notification_id TEXT NOT NULL, recipient_id TEXT NOT NULL,
    state TEXT NOT NULL, rank INTEGER NOT NULL, event_us INTEGER NOT NULL,
    last_error TEXT NOT NULL, attempts INTEGER NOT NULL, expires_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, notification_id, recipient_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivery_status_by_expiry ON delivery_status (expires_us);
CREATE TABLE IF NOT EXISTS tenant_audit_log (
    tenant_id TEXT NOT NULL, event_id TEXT NOT NULL, event_us INTEGER NOT NULL,
    event_type TEXT NOT NULL, metadata TEXT NOT NULL, expires_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_by_time ON tenant_audit_log (tenant_id, event_us, event_id);
CREATE INDEX IF NOT EXISTS audit_by_expiry ON tenant_audit_log (expires_us);
CREATE TABLE IF NOT EXISTS dlq (
    tenant_id TEXT NOT NULL, dead_us INTEGER NOT NULL, notification_id TEXT NOT NULL,
    user_id TEXT NOT NULL, channel TEXT NOT NULL, reason TEXT NOT NULL,
    attempts INTEGER NOT NULL, last_error TEXT, trace_id TEXT, created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, dead_us, notification_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dlq_by_expiry ON dlq (expires_us);
"""

_INSERT_NOTIFICATION: Final = MultiRowInsert(
    "INSERT INTO notifications (tenant_id, id, user_id, channel, content, priority, metadata,"
    " created_us, expires_us) VALUES",
    9,
    "ON CONFLICT (tenant_id, id) DO NOTHING",
)

# SET expressions all read the row as it was, so each CASE compares old vs new.
# A key twice in one statement merges as two statements would: the second row
# conflicts with the first.
_UPSERT_STATUS: Final = MultiRowInsert(
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

_INSERT_AUDIT: Final = MultiRowInsert(
    "INSERT INTO tenant_audit_log (tenant_id, event_id, event_us, event_type, metadata,"
    " expires_us) VALUES",
    6,
    "ON CONFLICT (tenant_id, event_id) DO NOTHING",
)

_INSERT_DLQ: Final = MultiRowInsert(
    "INSERT INTO dlq (tenant_id, dead_us, notification_id, user_id, channel, reason, attempts,"
    " last_error, trace_id, created_us, expires_us) VALUES",
    11,
    "ON CONFLICT (tenant_id, dead_us, notification_id) DO NOTHING",
)

_NOTIFICATION_COLUMNS: Final = (
    "n.tenant_id, n.id, n.user_id, n.channel, n.content, n.priority, n.metadata, n.created_us"
)
_STATUS_JOIN: Final = (
    "LEFT JOIN delivery_status d ON d.tenant_id = n.tenant_id"
    " AND d.notification_id = n.id AND d.recipient_id = n.user_id"
)


def _is_transient(error: sqlite3.Error) -> bool:
    return isinstance(error, sqlite3.OperationalError) and any(
        marker in str(error).lower() for marker in _TRANSIENT_MESSAGES
    )


def _now_us() -> int:
    return time.time_ns() // 1000


def _notification_from_row(row: Sequence[Any]) -> Notification:
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


class SqliteNotificationStore:
    """:class:`~notifactor.ports.notification_store.NotificationStore` on one SQLite file.

    Open with :meth:`open`; close with :meth:`aclose`.
    """

    def __init__(self, connection: sqlite3.Connection, retention_days: RetentionPolicy) -> None:
        self._db = connection
        self._retention_days = retention_days
        self._limiter = trio.CapacityLimiter(1)
        self._closed = False

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
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"bad synchronous mode: {synchronous!r}")

        def connect() -> sqlite3.Connection:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            db.execute("PRAGMA foreign_keys=OFF")
            db.executescript(_SCHEMA)
            db.execute(
                "INSERT OR IGNORE INTO schema_version (version, applied_at_us) VALUES (?, ?)",
                (SCHEMA_VERSION, _now_us()),
            )
            return db

        try:
            db = await trio.to_thread.run_sync(connect)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open sqlite store at {path}: {error}") from error
        return cls(db, retention_days)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("store is closed")

        def call() -> T:
            try:
                return fn(self._db)
            except sqlite3.Error as error:
                if self._db.in_transaction:
                    self._db.rollback()
                if _is_transient(error):
                    raise TransientStoreError(f"sqlite: {error}") from error
                raise StoreError(f"sqlite: {error}") from error

        return await trio.to_thread.run_sync(call, limiter=self._limiter)

    async def _write(self, insert: MultiRowInsert, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            for sql, parameters in insert.statements(rows):
                db.execute(sql, parameters)
            db.execute("COMMIT")

        await self._run(write)

    def _expires(self, tenant_id: str, record_time_us: int) -> int:
        return expires_at_us(record_time_us, self._retention_days(tenant_id))

    async def save_notifications(self, notifications: Sequence[Notification]) -> None:
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
                self._expires(n.tenant_id, n.created_at_us),
            )
            for n in notifications
        ]
        await self._write(_INSERT_NOTIFICATION, rows)

    async def apply_delivery_updates(self, updates: Sequence[DeliveryUpdate]) -> None:
        rows = []
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
                    self._expires(update.tenant_id, to_us(update.created_at)),
                )
            )
        await self._write(_UPSERT_STATUS, rows)

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        rows = [
            (
                e.tenant_id,
                e.event_id,
                e.event_time_us,
                e.event_type,
                msgspec.json.encode(e.metadata).decode(),
                self._expires(e.tenant_id, e.event_time_us),
            )
            for e in events
        ]
        await self._write(_INSERT_AUDIT, rows)

    async def record_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
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
                self._expires(d.tenant_id, d.dead_at_us),
            )
            for d in letters
        ]
        await self._write(_INSERT_DLQ, rows)

    async def get_notification(
        self, tenant_id: str, notification_id: str
    ) -> NotificationView | None:
        sql = (
            f"SELECT {_NOTIFICATION_COLUMNS}, d.state, d.attempts, d.last_error, d.event_us"
            f" FROM notifications n {_STATUS_JOIN} WHERE n.tenant_id = ? AND n.id = ?"
        )
        row = await self._run(lambda db: db.execute(sql, (tenant_id, notification_id)).fetchone())
        if row is None:
            return None
        notification = _notification_from_row(row)
        state, attempts, last_error, event_us = row[8:]
        return NotificationView(
            notification=notification,
            status=DeliveryState(state) if state else STORED_STATE,
            attempts=attempts if state else STORED_ATTEMPTS,
            last_error=last_error or None,
            updated_at=from_us(event_us) if event_us is not None else notification.created_at,
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
        check_limit(limit)
        upper = Position(time_us=_MAX_US, key="")
        if cursor is not None:
            upper = decode_cursor(CursorKind.DELIVERIES, cursor)
        if until is not None:
            upper = min(upper, Position(time_us=to_us(until), key=""))
        where = ["n.tenant_id = ?", "(n.created_us, n.id, n.user_id) < (?, ?, ?)"]
        params: list[Any] = [tenant_id, *upper.as_tuple()]
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
        rows = await self._run(lambda db: db.execute(sql, params).fetchall())
        items = tuple(
            DeliveryRecord(
                notification_id=nid,
                user_id=uid,
                channel=channel,
                state=DeliveryState(st) if st else STORED_STATE,
                attempts=attempts if st else STORED_ATTEMPTS,
                last_error=last_error or None,
                updated_at=from_us(event_us if event_us is not None else created_us),
                created_at=from_us(created_us),
            )
            for nid, uid, channel, created_us, st, attempts, last_error, event_us in rows[:limit]
        )
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(
                CursorKind.DELIVERIES,
                Position(
                    time_us=to_us(last.created_at), key=last.notification_id, sub_key=last.user_id
                ),
            )
        return Page(items=items, next_cursor=next_cursor)

    async def inbox_after(
        self, tenant_id: str, user_id: str, cursor: str | None, limit: int
    ) -> list[InboxEntry]:
        check_limit(limit)
        after = Position(time_us=-1, key="")
        if cursor is not None:
            after = decode_cursor(CursorKind.INBOX, cursor)
        sql = (
            f"SELECT {_NOTIFICATION_COLUMNS}, d.state FROM notifications n {_STATUS_JOIN}"
            " WHERE n.tenant_id = ? AND n.user_id = ? AND (n.created_us, n.id) > (?, ?)"
            " ORDER BY n.created_us, n.id LIMIT ?"
        )
        params = (tenant_id, user_id, after.time_us, after.key, limit)
        rows = await self._run(lambda db: db.execute(sql, params).fetchall())
        entries = []
        for row in rows:
            notification = _notification_from_row(row)
            entries.append(
                InboxEntry(
                    notification=notification,
                    cursor=inbox_cursor(notification.id, notification.created_at_us),
                    state=DeliveryState(row[8]) if row[8] else STORED_STATE,
                )
            )
        return entries

    async def list_audit(
        self,
        tenant_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        check_limit(limit)
        upper = self._upper(CursorKind.AUDIT, cursor, until)
        sql = (
            "SELECT event_id, event_us, event_type, metadata FROM tenant_audit_log"
            " WHERE tenant_id = ? AND (event_us, event_id) < (?, ?) AND event_us >= ?"
            " ORDER BY event_us DESC, event_id DESC LIMIT ?"
        )
        params = (tenant_id, upper.time_us, upper.key, _lower(since), limit + 1)
        rows = await self._run(lambda db: db.execute(sql, params).fetchall())
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
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(
                CursorKind.AUDIT, Position(time_us=last.event_time_us, key=last.event_id)
            )
        return Page(items=items, next_cursor=next_cursor)

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
        check_limit(limit)
        upper = self._upper(CursorKind.DLQ, cursor, until)
        where = "tenant_id = ? AND (dead_us, notification_id) < (?, ?) AND dead_us >= ?"
        params: list[Any] = [tenant_id, upper.time_us, upper.key, _lower(since)]
        if reason is not None:
            where += " AND reason = ?"
            params.append(reason)
        sql = (
            "SELECT notification_id, user_id, channel, reason, attempts, last_error, trace_id,"
            f" dead_us, created_us FROM dlq WHERE {where}"
            " ORDER BY dead_us DESC, notification_id DESC LIMIT ?"
        )
        params.append(limit + 1)
        rows = await self._run(lambda db: db.execute(sql, params).fetchall())
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
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(
                CursorKind.DLQ, Position(time_us=last.dead_at_us, key=last.notification_id)
            )
        return Page(items=items, next_cursor=next_cursor)

    @staticmethod
    def _upper(kind: CursorKind, cursor: str | None, until: datetime | None) -> Position:
        upper = Position(time_us=_MAX_US, key="")
        if cursor is not None:
            upper = decode_cursor(kind, cursor)
        if until is not None:
            upper = min(upper, Position(time_us=to_us(until), key=""))
        return upper

    async def purge_expired(self, now: datetime | None = None) -> int:
        now_us = to_us(now) if now is not None else _now_us()

        def purge(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            removed = 0
            for table in ("notifications", "delivery_status", "tenant_audit_log", "dlq"):
                removed += db.execute(
                    f"DELETE FROM {table} WHERE expires_us <= ?", (now_us,)
                ).rowcount
            db.execute("COMMIT")
            return removed

        return await self._run(purge)

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._db.close, limiter=self._limiter)


def _lower(since: datetime | None) -> int:
    return to_us(since) if since is not None else -1
