"""The production store: Cassandra behind the storage port.

Writes never read first and never use lightweight transactions. Every row is
written with an explicit ``USING TIMESTAMP``:

* notification columns with the notification's ``created_at``: replays write
  identical cells at an identical timestamp, so they change nothing;
* delivery-state cells (``state``, ``last_error``, ``updated_us``) with
  :func:`~notifactor.domain.delivery_state.write_timestamp`, so Cassandra's
  last-write-wins picks the same winner as
  :func:`~notifactor.domain.delivery_state.merge`, whatever the arrival order;
* the ``attempts`` cell in its own statement, timestamped with the count, so
  the largest count wins independently of the state.

Statements are prepared once, grouped by partition, and each group is sent as
one unlogged batch (a single mutation on one replica set, token-aware routed)
or as a single statement; groups run concurrently under a
``trio.CapacityLimiter``. TTLs count from each record's own time (tenant
``retention_days``). Driver errors a retry may cure become
:class:`~notifactor.ports.notification_store.TransientStoreError`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

import attrs
import msgspec
import trio
from cassandra import (
    CoordinationFailure,
    OperationTimedOut,
    Timeout,
    Unavailable,
)
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from cassandra.query import BatchStatement, BatchType, BoundStatement, PreparedStatement

from notifactor.adapters.cassandra_schema import check_keyspace_name
from notifactor.adapters.cassandra_session import CassandraSession
from notifactor.domain.audit import AuditEvent
from notifactor.domain.cursor import (
    CursorKind,
    Position,
    decode_cursor,
    encode_cursor,
    inbox_cursor,
)
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import (
    DeliveryState,
    attempts_timestamp,
    write_timestamp,
)
from notifactor.domain.notification import (
    DeliveryRecord,
    DeliveryUpdate,
    InboxEntry,
    Notification,
    NotificationView,
)
from notifactor.domain.page import Page
from notifactor.domain.retention import SECONDS_PER_DAY, ttl_seconds
from notifactor.domain.timestamps import day_bucket, from_us, to_us
from notifactor.ports.notification_store import (
    RetentionPolicy,
    StoreError,
    TransientStoreError,
    check_limit,
)

_MAX_US: Final = (1 << 62) - 1
#: Rows a filtered listing reads per call before it returns a short page.
SCAN_BUDGET: Final = 2000
#: Keeps unlogged batches well under Cassandra's batch_size_fail_threshold (50 KiB).
_BATCH_BYTES: Final = 24 * 1024
_BATCH_STATEMENTS: Final = 64
_TRANSIENT: Final = (
    Unavailable,
    Timeout,
    OperationTimedOut,
    NoHostAvailable,
    CoordinationFailure,
    ConnectionException,
)
_DELIVERIES_SCOPE: Final = "deliveries"
_AUDIT_SCOPE: Final = "audit"
_DLQ_SCOPE: Final = "dlq"


def _inbox_scope(user_id: str) -> str:
    return f"inbox:{user_id}"


def _now_us() -> int:
    return time.time_ns() // 1000


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except _TRANSIENT as error:
        raise TransientStoreError(f"cassandra: {type(error).__name__}: {error}") from error
    except StoreError:
        raise
    except Exception as error:
        # Anything else the driver raises (InvalidRequest, ...) is permanent.
        if type(error).__module__.startswith("cassandra"):
            raise StoreError(f"cassandra: {type(error).__name__}: {error}") from error
        raise


@attrs.frozen
class _Write:
    """One bound statement and the partition it lands in."""

    partition: tuple[Any, ...]
    statement: BoundStatement
    size: int


_CQL: Final = {
    "insert_notification": (
        "INSERT INTO {ks}.notifications (tenant_id, notification_id, user_id, channel, content,"
        " priority, metadata, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " USING TIMESTAMP ? AND TTL ?"
    ),
    "insert_inbox": (
        "INSERT INTO {ks}.inbox_by_user (tenant_id, user_id, day, created_us, notification_id,"
        " channel, content, priority, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " USING TIMESTAMP ? AND TTL ?"
    ),
    "insert_history": (
        "INSERT INTO {ks}.deliveries_by_tenant (tenant_id, day, created_us, notification_id,"
        " recipient_id, channel) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    ),
    "insert_bucket": (
        "INSERT INTO {ks}.bucket_index (tenant_id, scope, day) VALUES (?, ?, ?) USING TTL ?"
    ),
    "status_state": (
        "UPDATE {ks}.delivery_status USING TIMESTAMP ? AND TTL ?"
        " SET state = ?, last_error = ?, updated_us = ?"
        " WHERE tenant_id = ? AND notification_id = ? AND recipient_id = ?"
    ),
    "status_attempts": (
        "UPDATE {ks}.delivery_status USING TIMESTAMP ? AND TTL ? SET attempts = ?"
        " WHERE tenant_id = ? AND notification_id = ? AND recipient_id = ?"
    ),
    "inbox_state": (
        "UPDATE {ks}.inbox_by_user USING TIMESTAMP ? AND TTL ?"
        " SET state = ?, last_error = ?, updated_us = ?"
        " WHERE tenant_id = ? AND user_id = ? AND day = ? AND created_us = ?"
        " AND notification_id = ?"
    ),
    "inbox_attempts": (
        "UPDATE {ks}.inbox_by_user USING TIMESTAMP ? AND TTL ? SET attempts = ?"
        " WHERE tenant_id = ? AND user_id = ? AND day = ? AND created_us = ?"
        " AND notification_id = ?"
    ),
    "history_state": (
        "UPDATE {ks}.deliveries_by_tenant USING TIMESTAMP ? AND TTL ?"
        " SET state = ?, last_error = ?, updated_us = ?"
        " WHERE tenant_id = ? AND day = ? AND created_us = ? AND notification_id = ?"
        " AND recipient_id = ?"
    ),
    "history_attempts": (
        "UPDATE {ks}.deliveries_by_tenant USING TIMESTAMP ? AND TTL ? SET attempts = ?"
        " WHERE tenant_id = ? AND day = ? AND created_us = ? AND notification_id = ?"
        " AND recipient_id = ?"
    ),
    "insert_audit": (
        "INSERT INTO {ks}.tenant_audit_log (tenant_id, day, event_us, event_id, event_type,"
        " metadata) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    ),
    "insert_dlq": (
        "INSERT INTO {ks}.dlq_by_tenant (tenant_id, day, dead_us, notification_id, user_id,"
        " channel, reason, attempts, last_error, trace_id, created_us)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    ),
    "select_notification": (
        "SELECT tenant_id, notification_id, user_id, channel, content, priority, metadata,"
        " created_us FROM {ks}.notifications WHERE tenant_id = ? AND notification_id = ?"
    ),
    "select_status": (
        "SELECT state, attempts, last_error, updated_us FROM {ks}.delivery_status"
        " WHERE tenant_id = ? AND notification_id = ? AND recipient_id = ?"
    ),
    "buckets_desc": (
        "SELECT day FROM {ks}.bucket_index WHERE tenant_id = ? AND scope = ?"
        " AND day <= ? AND day >= ?"
    ),
    "buckets_asc": (
        "SELECT day FROM {ks}.bucket_index WHERE tenant_id = ? AND scope = ? AND day >= ?"
        " ORDER BY day ASC"
    ),
    "history_page": (
        "SELECT created_us, notification_id, recipient_id, channel, state, attempts, last_error,"
        " updated_us FROM {ks}.deliveries_by_tenant WHERE tenant_id = ? AND day = ?"
        " AND (created_us, notification_id, recipient_id) < (?, ?, ?) LIMIT ?"
    ),
    "inbox_desc_page": (
        "SELECT created_us, notification_id, channel, state, attempts, last_error, updated_us,"
        " content FROM {ks}.inbox_by_user WHERE tenant_id = ? AND user_id = ? AND day = ?"
        " AND (created_us, notification_id) < (?, ?)"
        " ORDER BY created_us DESC, notification_id DESC LIMIT ?"
    ),
    "inbox_asc_page": (
        "SELECT created_us, notification_id, channel, content, priority, metadata, state"
        " FROM {ks}.inbox_by_user WHERE tenant_id = ? AND user_id = ? AND day = ?"
        " AND (created_us, notification_id) > (?, ?) LIMIT ?"
    ),
    "audit_page": (
        "SELECT event_us, event_id, event_type, metadata FROM {ks}.tenant_audit_log"
        " WHERE tenant_id = ? AND day = ? AND (event_us, event_id) < (?, ?) LIMIT ?"
    ),
    "dlq_page": (
        "SELECT dead_us, notification_id, user_id, channel, reason, attempts, last_error,"
        " trace_id, created_us FROM {ks}.dlq_by_tenant WHERE tenant_id = ? AND day = ?"
        " AND (dead_us, notification_id) < (?, ?) LIMIT ?"
    ),
}

# A row of a descending scan: its position, and the item (None = skip it).
_Fetch = Callable[[int, Position, int], Awaitable[list[tuple[Position, Any]]]]


class CassandraNotificationStore:
    """:class:`~notifactor.ports.notification_store.NotificationStore` on Cassandra.

    Create with :meth:`open` on a session from
    :func:`~notifactor.adapters.cassandra_session.connect_cassandra`, after
    :func:`~notifactor.adapters.cassandra_schema.migrate` has run.
    """

    def __init__(
        self,
        session: CassandraSession,
        keyspace: str,
        retention_days: RetentionPolicy,
        prepared: dict[str, PreparedStatement],
        *,
        max_in_flight: int,
        owns_session: bool,
    ) -> None:
        self._session = session
        self._keyspace = keyspace
        self._retention_days = retention_days
        self._prepared = prepared
        self._limiter = trio.CapacityLimiter(max_in_flight)
        self._owns_session = owns_session
        self._closed = False

    @classmethod
    async def open(
        cls,
        session: CassandraSession,
        keyspace: str,
        retention_days: RetentionPolicy,
        *,
        max_in_flight: int = 128,
        owns_session: bool = False,
    ) -> CassandraNotificationStore:
        """Prepare every statement against ``keyspace``.

        Args:
            max_in_flight: concurrent requests this store sends at most.
            owns_session: close ``session`` in :meth:`aclose`.
        """
        ks = check_keyspace_name(keyspace)
        prepared: dict[str, PreparedStatement] = {}
        with _translated_errors():
            for name, cql in _CQL.items():
                statement = await session.prepare(cql.format(ks=ks))
                statement.is_idempotent = True
                prepared[name] = statement
        return cls(
            session,
            ks,
            retention_days,
            prepared,
            max_in_flight=max_in_flight,
            owns_session=owns_session,
        )

    # -- writes ---------------------------------------------------------------

    def _bind(self, name: str, values: Sequence[Any]) -> BoundStatement:
        return self._prepared[name].bind(values)

    def _ttl(self, tenant_id: str, record_time_us: int, now_us: int) -> int | None:
        return ttl_seconds(record_time_us, self._retention_days(tenant_id), now_us)

    async def _execute_writes(self, writes: list[_Write]) -> None:
        """Send ``writes`` as one unlogged batch (or one statement) per partition chunk."""
        groups: dict[tuple[Any, ...], list[list[_Write]]] = {}
        for write in writes:
            chunks = groups.setdefault(write.partition, [[]])
            chunk = chunks[-1]
            if chunk and (
                len(chunk) >= _BATCH_STATEMENTS
                or sum(w.size for w in chunk) + write.size > _BATCH_BYTES
            ):
                chunk = []
                chunks.append(chunk)
            chunk.append(write)
        statements: list[Any] = []
        for chunks in groups.values():
            for chunk in chunks:
                if len(chunk) == 1:
                    statements.append(chunk[0].statement)
                else:
                    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                    for write in chunk:
                        batch.add(write.statement)
                    batch.is_idempotent = True
                    statements.append(batch)
        await self._execute_all(statements)

    async def _execute_all(self, statements: list[Any]) -> None:
        if not statements:
            return
        if len(statements) == 1:
            await self._execute(statements[0])
            return
        async with trio.open_nursery() as nursery:
            for statement in statements:
                nursery.start_soon(self._execute, statement)

    async def _execute(self, statement: Any, params: Sequence[Any] | None = None) -> list[Any]:
        if self._closed:
            raise StoreError("store is closed")
        async with self._limiter:
            with _translated_errors():
                return await self._session.execute(statement, params)

    def _bucket_writes(self, entries: dict[tuple[str, str, int], int]) -> list[_Write]:
        # The index row outlives the rows of its day by a day.
        return [
            _Write(
                partition=("bucket_index", tenant_id, scope),
                statement=self._bind(
                    "insert_bucket", (tenant_id, scope, day, ttl + SECONDS_PER_DAY)
                ),
                size=64,
            )
            for (tenant_id, scope, day), ttl in entries.items()
        ]

    async def save_notifications(self, notifications: Sequence[Notification]) -> None:
        await self._execute_writes(self._notification_writes(notifications, _now_us()))

    def _notification_writes(
        self, notifications: Sequence[Notification], now_us: int
    ) -> list[_Write]:
        writes: list[_Write] = []
        buckets: dict[tuple[str, str, int], int] = {}
        for n in notifications:
            created_us = n.created_at_us
            ttl = self._ttl(n.tenant_id, created_us, now_us)
            if ttl is None:
                continue
            day = day_bucket(created_us)
            metadata = msgspec.json.encode(n.metadata).decode()
            size = len(n.content) + len(metadata) + 128
            writes.append(
                _Write(
                    partition=("notifications", n.tenant_id, n.id),
                    statement=self._bind(
                        "insert_notification",
                        (
                            n.tenant_id,
                            n.id,
                            n.user_id,
                            n.channel,
                            n.content,
                            n.priority,
                            metadata,
                            created_us,
                            created_us,
                            ttl,
                        ),
                    ),
                    size=size,
                )
            )
            writes.append(
                _Write(
                    partition=("inbox", n.tenant_id, n.user_id, day),
                    statement=self._bind(
                        "insert_inbox",
                        (
                            n.tenant_id,
                            n.user_id,
                            day,
                            created_us,
                            n.id,
                            n.channel,
                            n.content,
                            n.priority,
                            metadata,
                            created_us,
                            ttl,
                        ),
                    ),
                    size=size,
                )
            )
            writes.append(
                _Write(
                    partition=("history", n.tenant_id, day),
                    statement=self._bind(
                        "insert_history",
                        (n.tenant_id, day, created_us, n.id, n.user_id, n.channel, created_us, ttl),
                    ),
                    size=128,
                )
            )
            for scope in (_DELIVERIES_SCOPE, _inbox_scope(n.user_id)):
                key = (n.tenant_id, scope, day)
                buckets[key] = max(buckets.get(key, 0), ttl)
        return writes + self._bucket_writes(buckets)

    async def apply_delivery_updates(self, updates: Sequence[DeliveryUpdate]) -> None:
        await self._execute_writes(self._update_writes(updates, _now_us()))

    def _update_writes(self, updates: Sequence[DeliveryUpdate], now_us: int) -> list[_Write]:
        writes: list[_Write] = []
        for u in updates:
            created_us = to_us(u.created_at)
            ttl = self._ttl(u.tenant_id, created_us, now_us)
            if ttl is None:
                continue
            status = u.status
            day = day_bucket(created_us)
            state_ts = write_timestamp(status.state, status.event_time_us)
            attempts_ts = attempts_timestamp(status.attempts)
            state_cells = (status.state.value, status.last_error, status.event_time_us)
            size = len(status.last_error) + 96
            # (statement prefix, partition key, full primary key) of each copy.
            targets = (
                (
                    "status",
                    ("status", u.tenant_id, u.notification_id),
                    (u.tenant_id, u.notification_id, u.recipient_id),
                ),
                (
                    "inbox",
                    ("inbox", u.tenant_id, u.recipient_id, day),
                    (u.tenant_id, u.recipient_id, day, created_us, u.notification_id),
                ),
                (
                    "history",
                    ("history", u.tenant_id, day),
                    (u.tenant_id, day, created_us, u.notification_id, u.recipient_id),
                ),
            )
            for prefix, partition, key in targets:
                writes.append(
                    _Write(
                        partition=partition,
                        statement=self._bind(
                            f"{prefix}_state", (state_ts, ttl, *state_cells, *key)
                        ),
                        size=size,
                    )
                )
                writes.append(
                    _Write(
                        partition=partition,
                        statement=self._bind(
                            f"{prefix}_attempts", (attempts_ts, ttl, status.attempts, *key)
                        ),
                        size=64,
                    )
                )
        return writes

    def row_statements(
        self, notifications: Sequence[Notification], updates: Sequence[DeliveryUpdate]
    ) -> list[BoundStatement]:
        """The single-row statements the records turn into, ungrouped (for benchmarks)."""
        now_us = _now_us()
        writes = self._notification_writes(notifications, now_us)
        writes += self._update_writes(updates, now_us)
        return [write.statement for write in writes]

    async def execute_statement(self, statement: BoundStatement) -> None:
        """Send one statement through this store's limiter (for benchmarks)."""
        await self._execute(statement)

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        now_us = _now_us()
        writes: list[_Write] = []
        buckets: dict[tuple[str, str, int], int] = {}
        for e in events:
            ttl = self._ttl(e.tenant_id, e.event_time_us, now_us)
            if ttl is None:
                continue
            day = day_bucket(e.event_time_us)
            metadata = msgspec.json.encode(e.metadata).decode()
            writes.append(
                _Write(
                    partition=("audit", e.tenant_id, day),
                    statement=self._bind(
                        "insert_audit",
                        (
                            e.tenant_id,
                            day,
                            e.event_time_us,
                            e.event_id,
                            e.event_type,
                            metadata,
                            e.event_time_us,
                            ttl,
                        ),
                    ),
                    size=len(metadata) + 96,
                )
            )
            key = (e.tenant_id, _AUDIT_SCOPE, day)
            buckets[key] = max(buckets.get(key, 0), ttl)
        await self._execute_writes(writes + self._bucket_writes(buckets))

    async def record_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        now_us = _now_us()
        writes: list[_Write] = []
        buckets: dict[tuple[str, str, int], int] = {}
        for d in letters:
            ttl = self._ttl(d.tenant_id, d.dead_at_us, now_us)
            if ttl is None:
                continue
            day = day_bucket(d.dead_at_us)
            writes.append(
                _Write(
                    partition=("dlq", d.tenant_id, day),
                    statement=self._bind(
                        "insert_dlq",
                        (
                            d.tenant_id,
                            day,
                            d.dead_at_us,
                            d.notification_id,
                            d.user_id,
                            d.channel,
                            d.reason,
                            d.attempts,
                            d.last_error,
                            d.trace_id,
                            to_us(d.created_at),
                            d.dead_at_us,
                            ttl,
                        ),
                    ),
                    size=len(d.last_error or "") + len(d.reason) + 128,
                )
            )
            key = (d.tenant_id, _DLQ_SCOPE, day)
            buckets[key] = max(buckets.get(key, 0), ttl)
        await self._execute_writes(writes + self._bucket_writes(buckets))

    # -- reads ----------------------------------------------------------------

    async def _query(self, name: str, params: Sequence[Any]) -> list[Any]:
        return await self._execute(self._prepared[name], params)

    async def get_notification(
        self, tenant_id: str, notification_id: str
    ) -> NotificationView | None:
        rows = await self._query("select_notification", (tenant_id, notification_id))
        if not rows:
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
        status_rows = await self._query(
            "select_status", (tenant_id, notification_id, notification.user_id)
        )
        status = status_rows[0] if status_rows else None
        if status is None or status.state is None:
            return NotificationView(
                notification=notification,
                status=DeliveryState.ACCEPTED,
                attempts=(status.attempts or 0) if status is not None else 0,
                last_error=None,
                updated_at=notification.created_at,
            )
        return NotificationView(
            notification=notification,
            status=DeliveryState(status.state),
            attempts=status.attempts or 0,
            last_error=status.last_error or None,
            updated_at=from_us(status.updated_us),
        )

    async def _buckets_desc(
        self, tenant_id: str, scope: str, upper_us: int, lower_us: int
    ) -> list[int]:
        rows = await self._query(
            "buckets_desc",
            (tenant_id, scope, day_bucket(min(upper_us, _MAX_US)), day_bucket(max(lower_us, 0))),
        )
        return [row.day for row in rows]

    async def _scan_desc(
        self,
        *,
        kind: CursorKind,
        buckets: list[int],
        upper: Position,
        since_us: int,
        limit: int,
        fetch: _Fetch,
        filtered: bool,
    ) -> tuple[list[Any], str | None]:
        """Walk ``buckets`` newest first from ``upper``, collecting up to ``limit`` items.

        Returns the items and the next cursor. The scan stops early after
        :data:`SCAN_BUDGET` rows; the cursor then points at the last row read
        (not necessarily returned), so the next call resumes right after it.
        """
        items: list[tuple[Position, Any]] = []
        scanned = 0
        last_scanned: Position | None = None
        for day in buckets:
            position = (
                upper if day == day_bucket(upper.time_us) else Position(time_us=_MAX_US, key="")
            )
            while True:
                want = limit + 1 - len(items)
                fetch_size = min(max(want, 50 if filtered else want), 1000)
                rows = await fetch(day, position, fetch_size)
                for row_position, item in rows:
                    if row_position.time_us < since_us:
                        return self._finish(kind, items, limit, None)
                    scanned += 1
                    last_scanned = row_position
                    if item is not None:
                        items.append((row_position, item))
                        if len(items) > limit:
                            return self._finish(kind, items, limit, None)
                if len(rows) < fetch_size:
                    break
                position = rows[-1][0]
                if scanned >= SCAN_BUDGET and last_scanned is not None:
                    return self._finish(kind, items, limit, last_scanned)
        return self._finish(kind, items, limit, None)

    @staticmethod
    def _finish(
        kind: CursorKind,
        items: list[tuple[Position, Any]],
        limit: int,
        stopped_at: Position | None,
    ) -> tuple[list[Any], str | None]:
        if len(items) > limit:
            return [item for _, item in items[:limit]], encode_cursor(kind, items[limit - 1][0])
        if stopped_at is not None:
            return [item for _, item in items], encode_cursor(kind, stopped_at)
        return [item for _, item in items], None

    @staticmethod
    def _upper(kind: CursorKind, cursor: str | None, until: datetime | None) -> Position:
        upper = Position(time_us=_MAX_US, key="")
        if cursor is not None:
            upper = decode_cursor(kind, cursor)
        if until is not None:
            upper = min(upper, Position(time_us=to_us(until), key=""))
        return upper

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
        upper = self._upper(CursorKind.DELIVERIES, cursor, until)
        since_us = to_us(since) if since is not None else 0

        def record(row: Any, recipient_id: str) -> DeliveryRecord | None:
            current = DeliveryState(row.state) if row.state else DeliveryState.ACCEPTED
            if state is not None and current is not state:
                return None
            has_status = row.state is not None and row.updated_us is not None
            return DeliveryRecord(
                notification_id=row.notification_id,
                user_id=recipient_id,
                channel=row.channel,
                state=current,
                attempts=row.attempts or 0,
                last_error=row.last_error or None,
                updated_at=from_us(row.updated_us if has_status else row.created_us),
                created_at=from_us(row.created_us),
            )

        if user_id is None:
            scope = _DELIVERIES_SCOPE

            async def fetch(day: int, at: Position, size: int) -> list[tuple[Position, Any]]:
                rows = await self._query(
                    "history_page", (tenant_id, day, at.time_us, at.key, at.sub_key, size)
                )
                return [
                    (
                        Position(
                            time_us=r.created_us, key=r.notification_id, sub_key=r.recipient_id
                        ),
                        None if r.channel is None else record(r, r.recipient_id),
                    )
                    for r in rows
                ]
        else:
            scope = _inbox_scope(user_id)

            async def fetch(day: int, at: Position, size: int) -> list[tuple[Position, Any]]:
                rows = await self._query(
                    "inbox_desc_page", (tenant_id, user_id, day, at.time_us, at.key, size)
                )
                return [
                    (
                        Position(time_us=r.created_us, key=r.notification_id, sub_key=user_id),
                        None if r.content is None else record(r, user_id),
                    )
                    for r in rows
                ]

        buckets = await self._buckets_desc(tenant_id, scope, upper.time_us, since_us)
        items, next_cursor = await self._scan_desc(
            kind=CursorKind.DELIVERIES,
            buckets=buckets,
            upper=upper,
            since_us=since_us,
            limit=limit,
            fetch=fetch,
            filtered=state is not None,
        )
        return Page(items=tuple(items), next_cursor=next_cursor)

    async def inbox_after(
        self, tenant_id: str, user_id: str, cursor: str | None, limit: int
    ) -> list[InboxEntry]:
        check_limit(limit)
        after = Position(time_us=-1, key="")
        if cursor is not None:
            after = decode_cursor(CursorKind.INBOX, cursor)
        rows = await self._query(
            "buckets_asc",
            (tenant_id, _inbox_scope(user_id), day_bucket(max(after.time_us, 0))),
        )
        entries: list[InboxEntry] = []
        for day in (row.day for row in rows):
            position = (
                after if day == day_bucket(max(after.time_us, 0)) else Position(time_us=-1, key="")
            )
            while len(entries) < limit:
                size = limit - len(entries)
                page = await self._query(
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
                            state=DeliveryState(r.state) if r.state else DeliveryState.ACCEPTED,
                        )
                    )
                if len(page) < size:
                    break
                position = Position(time_us=page[-1].created_us, key=page[-1].notification_id)
            if len(entries) >= limit:
                break
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
        since_us = to_us(since) if since is not None else 0

        async def fetch(day: int, at: Position, size: int) -> list[tuple[Position, Any]]:
            rows = await self._query("audit_page", (tenant_id, day, at.time_us, at.key, size))
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

        buckets = await self._buckets_desc(tenant_id, _AUDIT_SCOPE, upper.time_us, since_us)
        items, next_cursor = await self._scan_desc(
            kind=CursorKind.AUDIT,
            buckets=buckets,
            upper=upper,
            since_us=since_us,
            limit=limit,
            fetch=fetch,
            filtered=False,
        )
        return Page(items=tuple(items), next_cursor=next_cursor)

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
        since_us = to_us(since) if since is not None else 0

        async def fetch(day: int, at: Position, size: int) -> list[tuple[Position, Any]]:
            rows = await self._query("dlq_page", (tenant_id, day, at.time_us, at.key, size))
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

        buckets = await self._buckets_desc(tenant_id, _DLQ_SCOPE, upper.time_us, since_us)
        items, next_cursor = await self._scan_desc(
            kind=CursorKind.DLQ,
            buckets=buckets,
            upper=upper,
            since_us=since_us,
            limit=limit,
            fetch=fetch,
            filtered=reason is not None,
        )
        return Page(items=tuple(items), next_cursor=next_cursor)

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Cassandra expires rows by TTL on its own; nothing to do."""
        return 0

    async def ping(self) -> None:
        await self._execute("SELECT release_version FROM system.local")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_session:
            with trio.CancelScope(shield=True):
                await self._session.close()
