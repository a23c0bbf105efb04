"""The stores end-to-end tests run against: SQLite, or a real Cassandra keyspace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from infra.local.cassandra_server import CassandraContact
from notifactor.adapters.cassandra_session import connect_cassandra
from notifactor.adapters.cassandra_store import CassandraNotificationStore
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.ports.notification_store import NotificationStore

#: What the ``storage`` fixture gives: None for SQLite, or a migrated Cassandra keyspace.
Storage = tuple[CassandraContact, str] | None


@asynccontextmanager
async def open_test_store(data_dir: Path, cassandra: Storage) -> AsyncIterator[NotificationStore]:
    """SQLite under ``data_dir``, or the Cassandra keyspace given; closed on exit."""
    if cassandra is None:
        store: NotificationStore = await SqliteNotificationStore.open(
            data_dir / "notifactor.db", lambda _t: 30
        )
        try:
            yield store
        finally:
            with trio.CancelScope(shield=True):
                await store.aclose()
        return
    contact, keyspace = cassandra
    session = await connect_cassandra([(contact.host, contact.port)], keyspace=keyspace)
    async with session:
        cassandra_store = await CassandraNotificationStore.open(session, keyspace, lambda _t: 30)
        try:
            yield cassandra_store
        finally:
            with trio.CancelScope(shield=True):
                await cassandra_store.aclose()
