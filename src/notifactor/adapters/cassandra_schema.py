"""Create and upgrade the Cassandra keyspace and tables, idempotently.

``notifactor migrate`` calls :func:`migrate`. Each migration is a list of
statements that are safe to run again (``IF NOT EXISTS``); the highest applied
version is recorded in ``schema_version`` so later migrations run once, in
order. Running :func:`migrate` twice, or from two processes, ends in the same
schema. See docs/system-architecture.md, "Storage", for what each table serves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

import attrs

from notifactor.adapters.cassandra_session import CassandraSession

_IDENTIFIER: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


@attrs.frozen(kw_only=True)
class Replication:
    """A keyspace replication setting, rendered into CQL by :meth:`as_cql`.

    Use :meth:`simple` for one-datacenter test clusters and
    :meth:`network_topology` in production (a factor per datacenter, 3 each is
    the usual choice: QUORUM survives one replica down).
    """

    strategy: str
    factors: Mapping[str, int]

    @classmethod
    def simple(cls, replication_factor: int = 1) -> Replication:
        return cls(strategy="SimpleStrategy", factors={"replication_factor": replication_factor})

    @classmethod
    def network_topology(cls, factors: Mapping[str, int]) -> Replication:
        if not factors:
            raise ValueError("NetworkTopologyStrategy needs at least one datacenter")
        return cls(strategy="NetworkTopologyStrategy", factors=dict(factors))

    def as_cql(self) -> str:
        if self.strategy not in ("SimpleStrategy", "NetworkTopologyStrategy"):
            raise ValueError(f"unknown replication strategy {self.strategy!r}")
        parts = [f"'class': '{self.strategy}'"]
        for name, factor in sorted(self.factors.items()):
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
                raise ValueError(f"bad datacenter name {name!r}")
            if not isinstance(factor, int) or factor < 1:
                raise ValueError(f"replication factor of {name!r} must be an integer >= 1")
            parts.append(f"'{name}': {factor}")
        return "{" + ", ".join(parts) + "}"


@attrs.frozen(kw_only=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# Statements use {ks} for the keyspace; everything else is fixed text.
MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        version=1,
        description="notifications, delivery status, inbox, tenant history, audit, dlq",
        statements=(
            """CREATE TABLE IF NOT EXISTS {ks}.notifications (
                tenant_id text, notification_id text,
                user_id text, channel text, content text, priority text, metadata text,
                created_us bigint,
                PRIMARY KEY ((tenant_id, notification_id)))""",
            """CREATE TABLE IF NOT EXISTS {ks}.delivery_status (
                tenant_id text, notification_id text, recipient_id text,
                state text, last_error text, updated_us bigint, attempts int,
                PRIMARY KEY ((tenant_id, notification_id), recipient_id))""",
            """CREATE TABLE IF NOT EXISTS {ks}.inbox_by_user (
                tenant_id text, user_id text, day int, created_us bigint, notification_id text,
                channel text, content text, priority text, metadata text,
                state text, last_error text, updated_us bigint, attempts int,
                PRIMARY KEY ((tenant_id, user_id, day), created_us, notification_id))
                WITH CLUSTERING ORDER BY (created_us ASC, notification_id ASC)""",
            """CREATE TABLE IF NOT EXISTS {ks}.deliveries_by_tenant (
                tenant_id text, day int, created_us bigint, notification_id text,
                recipient_id text, channel text,
                state text, last_error text, updated_us bigint, attempts int,
                PRIMARY KEY ((tenant_id, day), created_us, notification_id, recipient_id))
                WITH CLUSTERING ORDER BY
                    (created_us DESC, notification_id DESC, recipient_id DESC)""",
            """CREATE TABLE IF NOT EXISTS {ks}.tenant_audit_log (
                tenant_id text, day int, event_us bigint, event_id text,
                event_type text, metadata text,
                PRIMARY KEY ((tenant_id, day), event_us, event_id))
                WITH CLUSTERING ORDER BY (event_us DESC, event_id DESC)""",
            """CREATE TABLE IF NOT EXISTS {ks}.dlq_by_tenant (
                tenant_id text, day int, dead_us bigint, notification_id text,
                user_id text, channel text, reason text, attempts int, last_error text,
                trace_id text, created_us bigint,
                PRIMARY KEY ((tenant_id, day), dead_us, notification_id))
                WITH CLUSTERING ORDER BY (dead_us DESC, notification_id DESC)""",
            """CREATE TABLE IF NOT EXISTS {ks}.bucket_index (
                tenant_id text, scope text, day int,
                PRIMARY KEY ((tenant_id, scope), day))
                WITH CLUSTERING ORDER BY (day DESC)""",
        ),
    ),
)

LATEST_VERSION: Final = MIGRATIONS[-1].version


def check_keyspace_name(keyspace: str) -> str:
    """``keyspace`` if it is a plain CQL identifier (DDL cannot bind it as a parameter)."""
    if not _IDENTIFIER.fullmatch(keyspace):
        raise ValueError(
            f"keyspace {keyspace!r} must start with a letter and hold only letters, digits, _"
        )
    return keyspace


async def current_version(session: CassandraSession, keyspace: str) -> int:
    """The highest applied migration, 0 when ``schema_version`` is empty."""
    rows = await session.execute(
        f"SELECT version FROM {check_keyspace_name(keyspace)}.schema_version"
    )
    return max((row.version for row in rows), default=0)


async def migrate(session: CassandraSession, keyspace: str, *, replication: Replication) -> int:
    """Create or upgrade ``keyspace`` to :data:`LATEST_VERSION`; returns the version reached.

    The keyspace is created with ``replication`` when missing; an existing
    keyspace keeps its replication (changing it needs a repair, an operator's
    decision; see the runbook).

    Raises:
        ValueError: a bad keyspace name or replication setting.
        Exception: the driver's error if a statement fails; rerun after fixing.
    """
    ks = check_keyspace_name(keyspace)
    await session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication.as_cql()}"
        " AND durable_writes = true"
    )
    await session.execute(
        f"CREATE TABLE IF NOT EXISTS {ks}.schema_version ("
        " version int PRIMARY KEY, description text, applied_at timestamp)"
    )
    applied = await current_version(session, ks)
    for migration in MIGRATIONS:
        if migration.version <= applied:
            continue
        for statement in migration.statements:
            await session.execute(statement.format(ks=ks))
        await session.execute(
            f"INSERT INTO {ks}.schema_version (version, description, applied_at) VALUES (%s, %s, %s)",
            (migration.version, migration.description, datetime.now(UTC)),
        )
        applied = migration.version
    return applied
