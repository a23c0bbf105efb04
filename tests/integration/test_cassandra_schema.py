"""Schema migrations against a real Cassandra node."""

from __future__ import annotations

import uuid

import pytest

from infra.local.cassandra_server import CassandraContact
from notifactor.adapters.cassandra_schema import (
    LATEST_VERSION,
    Replication,
    current_version,
    migrate,
)
from notifactor.adapters.cassandra_session import connect_cassandra

pytestmark = pytest.mark.integration

TABLES = {
    "schema_version",
    "notifications",
    "delivery_status",
    "inbox_by_user",
    "deliveries_by_tenant",
    "tenant_audit_log",
    "dlq_by_tenant",
    "bucket_index",
}


async def test_migrate_creates_everything_once_and_is_idempotent(
    cassandra_contact: CassandraContact,
) -> None:
    keyspace = f"schema_{uuid.uuid4().hex[:12]}"
    async with await connect_cassandra(
        [(cassandra_contact.host, cassandra_contact.port)]
    ) as session:
        try:
            assert await migrate(session, keyspace, replication=Replication.simple(1)) == (
                LATEST_VERSION
            )
            assert await migrate(session, keyspace, replication=Replication.simple(1)) == (
                LATEST_VERSION
            )
            assert await current_version(session, keyspace) == LATEST_VERSION
            rows = await session.execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
                (keyspace,),
            )
            assert {row.table_name for row in rows} == TABLES
            [ks] = await session.execute(
                "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
                (keyspace,),
            )
            assert ks.replication["class"].endswith("SimpleStrategy")
            assert ks.replication["replication_factor"] == "1"
            versions = await session.execute(f"SELECT version FROM {keyspace}.schema_version")
            assert [row.version for row in versions] == list(range(1, LATEST_VERSION + 1))
        finally:
            await session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")


def test_replication_renders_and_validates() -> None:
    assert Replication.simple(1).as_cql() == (
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    assert Replication.network_topology({"dc2": 3, "dc1": 3}).as_cql() == (
        "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 3}"
    )
    with pytest.raises(ValueError, match="datacenter"):
        Replication.network_topology({"dc1'; DROP": 3}).as_cql()
    with pytest.raises(ValueError, match="factor"):
        Replication.simple(0).as_cql()


async def test_bad_keyspace_names_are_refused(cassandra_contact: CassandraContact) -> None:
    async with await connect_cassandra(
        [(cassandra_contact.host, cassandra_contact.port)]
    ) as session:
        with pytest.raises(ValueError, match="keyspace"):
            await migrate(session, "x; DROP KEYSPACE system", replication=Replication.simple(1))
