"""The store itself: the storage port's methods on one prepared session.

It composes the package's parts: records become row writes
(:mod:`~notifactor.adapters.cassandra_store.writes`), grouped into per-partition
batches (:mod:`~notifactor.adapters.cassandra_store.batches`) and sent through
one limiter (:mod:`~notifactor.adapters.cassandra_store.execution`); reads and
listings come from :mod:`~notifactor.adapters.cassandra_store.reads` and
:mod:`~notifactor.adapters.cassandra_store.paging`.

Retention: rows are written with a TTL from their tenant's ``retention_days``
then, and a record already past it is not written. Reads hide whatever is
past the tenant's retention now, the rule writes apply, so a lowered
retention hides older rows at once (their cells stay on disk until their TTL
ends) and a raised one leaves rows already written with their TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import trio
from cassandra.query import BoundStatement, PreparedStatement

from notifactor.adapters.cassandra_schema import check_keyspace_name
from notifactor.adapters.cassandra_session import CassandraSession
from notifactor.adapters.cassandra_store import reads
from notifactor.adapters.cassandra_store.batches import RowWrite, batch_statements
from notifactor.adapters.cassandra_store.execution import StatementRunner
from notifactor.adapters.cassandra_store.paging import page_newest_first
from notifactor.adapters.cassandra_store.statements import prepare_statements
from notifactor.adapters.cassandra_store.writes import RowWriteBuilder
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
from notifactor.domain.timestamps import wall_clock_us
from notifactor.ports.notification_store import RetentionPolicy


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
        self._runner = StatementRunner(session, prepared, max_in_flight=max_in_flight)
        self._rows = RowWriteBuilder(self._runner, retention_days)
        self._retention_days = retention_days
        self._owns_session = owns_session

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
        prepared = await prepare_statements(session, ks)
        return cls(
            session,
            ks,
            retention_days,
            prepared,
            max_in_flight=max_in_flight,
            owns_session=owns_session,
        )

    # -- writes ---------------------------------------------------------------

    async def _write(self, writes: list[RowWrite]) -> None:
        await self._runner.execute_all(batch_statements(writes))

    async def save_notifications(self, notifications: Sequence[Notification]) -> None:
        await self._write(self._rows.notifications(notifications, wall_clock_us()))

    async def apply_delivery_updates(self, updates: Sequence[DeliveryUpdate]) -> None:
        await self._write(self._rows.delivery_updates(updates, wall_clock_us()))

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        await self._write(self._rows.audit_events(events, wall_clock_us()))

    async def record_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        await self._write(self._rows.dead_letters(letters, wall_clock_us()))

    def row_statements(
        self, notifications: Sequence[Notification], updates: Sequence[DeliveryUpdate]
    ) -> list[BoundStatement]:
        """The single-row statements the records turn into, ungrouped (for benchmarks)."""
        now_us = wall_clock_us()
        writes = self._rows.notifications(notifications, now_us)
        writes += self._rows.delivery_updates(updates, now_us)
        return [write.statement for write in writes]

    async def execute_statement(self, statement: BoundStatement) -> None:
        """Send one statement through this store's limiter (for benchmarks)."""
        await self._runner.execute(statement)

    # -- reads ----------------------------------------------------------------

    def _cutoff_us(self, tenant_id: str) -> int:
        """The tenant's retention cutoff now: rows made at or before it are not read."""
        return retention_cutoff_us(self._retention_days(tenant_id), wall_clock_us())

    async def get_notification(
        self, tenant_id: str, notification_id: str
    ) -> NotificationView | None:
        return await reads.get_notification(
            self._runner, tenant_id, notification_id, self._cutoff_us(tenant_id)
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
        listing = reads.deliveries_listing(self._runner, tenant_id, user_id, state)
        return await page_newest_first(
            self._runner,
            tenant_id,
            listing,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            cutoff_us=self._cutoff_us(tenant_id),
        )

    async def inbox_after(
        self, tenant_id: str, user_id: str, cursor: str | None, limit: int
    ) -> list[InboxEntry]:
        return await reads.inbox_after(
            self._runner, tenant_id, user_id, cursor, limit, cutoff_us=self._cutoff_us(tenant_id)
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
        listing = reads.audit_listing(self._runner, tenant_id)
        return await page_newest_first(
            self._runner,
            tenant_id,
            listing,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            cutoff_us=self._cutoff_us(tenant_id),
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
        listing = reads.dead_letter_listing(self._runner, tenant_id, reason)
        return await page_newest_first(
            self._runner,
            tenant_id,
            listing,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            cutoff_us=self._cutoff_us(tenant_id),
        )

    # -- lifecycle ------------------------------------------------------------

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Cassandra expires rows by TTL on its own; nothing to do."""
        return 0

    async def ping(self) -> None:
        await self._runner.execute("SELECT release_version FROM system.local")

    async def aclose(self) -> None:
        if self._runner.closed:
            return
        self._runner.close()
        if self._owns_session:
            with trio.CancelScope(shield=True):
                await self._session.close()
