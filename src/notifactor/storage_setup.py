"""The configured store and the storage writers in front of it.

Every role opens its store through :func:`open_store` (SQLite or Cassandra,
timed by :class:`~notifactor.observability.instrumented.InstrumentedStore`)
and batches writes through a writer from :func:`storage_writer_for`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from notifactor.actors.storage_writer import (
    StorageWriter,
    StorageWriterConfig,
    kind_and_tenant,
    kind_only,
)
from notifactor.adapters.cassandra_schema import LATEST_VERSION, Replication, current_version
from notifactor.adapters.cassandra_session import CassandraSession, connect_cassandra
from notifactor.adapters.cassandra_store import CassandraNotificationStore
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.config import CassandraTarget, Config, SqliteTarget
from notifactor.domain.batching import BatchPolicy
from notifactor.errors import ConfigError
from notifactor.observability.instrumented import InstrumentedStore
from notifactor.ports.notification_store import NotificationStore

log = logging.getLogger("notifactor.storage")

#: Records per store call on Cassandra: one unlogged batch per partition key.
CASSANDRA_GROUP_ITEMS = 64


def storage_writer_for(config: Config, store: NotificationStore) -> StorageWriter:
    """A storage writer for ``store``, tuned by ``[storage_writer]``.

    On SQLite one writer thread serialises every write, so a flush goes in
    one transaction per record kind; on Cassandra records are grouped by
    kind and tenant (the partition) into batches of 64.
    """
    section = config.storage_writer
    sqlite = isinstance(config.storage, SqliteTarget)
    group = section.max_group_items or (section.max_items if sqlite else CASSANDRA_GROUP_ITEMS)
    tuning = StorageWriterConfig(
        batch=BatchPolicy(
            max_items=section.max_items,
            max_age_s=section.max_age_ms / 1000,
            max_group_items=group,
            flush_when_idle=section.flush_when_idle,
        ),
        max_flushes_in_flight=section.max_flushes_in_flight,
        flush_timeout_s=section.flush_timeout_s,
    )
    return StorageWriter(store, tuning, partition_key=kind_only if sqlite else kind_and_tenant)


@asynccontextmanager
async def open_store(config: Config) -> AsyncIterator[NotificationStore]:
    """The configured store, opened (schema created for SQLite), closed on exit.

    Every call on it is timed (:class:`InstrumentedStore`).
    """
    target = config.storage

    def retention_days(tenant_id: str) -> int:
        return config.tenant_policy(tenant_id).retention_days

    store: NotificationStore
    if isinstance(target, SqliteTarget):
        store = await SqliteNotificationStore.open(target.path, retention_days)
    else:
        session = await connect_configured_cassandra(config, target)
        store = await CassandraNotificationStore.open(
            session,
            target.keyspace,
            retention_days,
            max_in_flight=config.cassandra.max_in_flight,
            owns_session=True,
        )
    try:
        yield InstrumentedStore(store)
    finally:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + config.shutdown_grace_s
            await store.aclose()


async def connect_configured_cassandra(config: Config, target: CassandraTarget) -> CassandraSession:
    """A session to ``target``'s contact points, tuned by ``[cassandra]``."""
    return await connect_cassandra(
        target.contact_points,
        request_timeout=config.cassandra.request_timeout_s,
        local_dc=config.cassandra.local_dc,
        consistency=config.cassandra.consistency,
    )


def replication_of(config: Config) -> Replication:
    """The keyspace replication ``[cassandra]`` asks for."""
    cassandra = config.cassandra
    if cassandra.replication_class == "SimpleStrategy":
        return Replication.simple(cassandra.replication_factor)
    return Replication.network_topology(
        dict.fromkeys(cassandra.datacenter_names, cassandra.replication_factor)
    )


async def check_storage_ready(config: Config) -> None:
    """Fail fast, before anything starts, on a store that cannot work.

    SQLite: the path must not be a directory and, when it exists, must be a
    SQLite database. Cassandra: the keyspace must exist at the schema version
    of this release (``notifactor migrate``). An unreachable Cassandra is not
    judged here: the supervision tree retries it.

    Raises:
        ConfigError: on ``storage_url``, one line naming what to do.
    """
    target = config.storage
    if isinstance(target, SqliteTarget):
        check_sqlite_path(target.path)
    else:
        await _check_cassandra_schema(config, target)


def check_sqlite_path(path: Path) -> None:
    """Raise :class:`ConfigError` when ``path`` cannot hold the SQLite database.

    A file that does not exist yet must be creatable: its directory is
    made (as the store would) and must be writable.
    """
    if path.is_dir():
        raise ConfigError("storage_url", f"{path} is a directory, not a SQLite database file")
    if not path.exists():
        _check_creatable(path)
        return
    if path.stat().st_size == 0:
        return
    try:
        # A proper file URI: a path given as ``sqlite:////abs/path`` keeps a
        # leading "//", and special characters must be escaped.
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            connection.execute("PRAGMA schema_version").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise ConfigError(
            "storage_url", f"{path} cannot be opened as a SQLite database: {error}"
        ) from None


def _check_creatable(path: Path) -> None:
    """Raise :class:`ConfigError` unless the database file ``path`` can be created."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(
            "storage_url", f"cannot create the directory of {path}: {reason}"
        ) from None
    # A file of this process's own is created and removed beside it: never the
    # database's own name, which another process may be creating right now.
    probe = path.parent / f".{path.name}.{os.getpid()}.probe"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass  # left by an earlier process of this pid: the directory takes files
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError("storage_url", f"cannot create {path}: {reason}") from None
    probe.unlink(missing_ok=True)


async def _check_cassandra_schema(config: Config, target: CassandraTarget) -> None:
    try:
        session = await connect_configured_cassandra(config, target)
    except Exception as error:  # unreachable now: the tree's restarts retry it
        log.warning("cannot check the Cassandra schema before start: %s", error)
        return
    try:
        problem = await _schema_problem(session, target.keyspace)
    finally:
        await session.close()
    if problem is not None:
        raise ConfigError("storage_url", f"{problem}; run `notifactor migrate`")


async def _schema_problem(session: CassandraSession, keyspace: str) -> str | None:
    keyspaces = await session.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    )
    if not keyspaces:
        return f"keyspace {keyspace} does not exist"
    tables = await session.execute(
        "SELECT table_name FROM system_schema.tables"
        " WHERE keyspace_name = %s AND table_name = 'schema_version'",
        (keyspace,),
    )
    version = await current_version(session, keyspace) if tables else 0
    if version < LATEST_VERSION:
        return (
            f"keyspace {keyspace} is at schema version {version}, this release needs "
            f"{LATEST_VERSION}"
        )
    return None
