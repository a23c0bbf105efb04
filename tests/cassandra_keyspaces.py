"""A migrated Cassandra keyspace for tests that need the notifactor schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from infra.local.cassandra_server import CassandraContact
from notifactor.adapters.cassandra_schema import Replication, migrate
from notifactor.adapters.cassandra_session import connect_cassandra


@contextmanager
def migrated_keyspace(contact: CassandraContact, prefix: str) -> Iterator[str]:
    """A fresh keyspace named ``{prefix}_…`` with the schema (RF 1), dropped on exit.

    Synchronous (it runs its own Trio loop), so fixtures set it up outside
    the test's Trio run.
    """
    keyspace = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def run(statement: str | None) -> None:
        session = await connect_cassandra([(contact.host, contact.port)])
        async with session:
            if statement is None:
                await migrate(session, keyspace, replication=Replication.simple(1))
            else:
                await session.execute(statement)

    trio.run(run, None)
    try:
        yield keyspace
    finally:
        trio.run(run, f"DROP KEYSPACE IF EXISTS {keyspace}")
