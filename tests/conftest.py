"""Root fixtures: a real Redis and a real Cassandra for integration tests.

Each server starts lazily, once per test session, the first time a test asks
for it, and stops when the session ends. Set ``NOTIFACTOR_TEST_REDIS_URL`` or
``NOTIFACTOR_TEST_CASSANDRA=host:port`` to use servers that already run (for
example one from ``python -m infra.local.cassandra_server start``).

A server that cannot be started fails the tests that need it; it never skips
them, so a green run always means the integration tests really ran. The run
ends with a line naming the servers and versions used.

Isolation between tests: ``cassandra_keyspace`` gives each test its own
keyspace (dropped afterwards) and ``redis_prefix`` its own key prefix (keys
under it are deleted afterwards). Nothing is ever flushed wholesale, so the
external-server variables are safe against a shared development server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import coredis
import pytest
import trio

from infra.local.cassandra_server import (
    CassandraContact,
    LocalCassandra,
    fetch_jars,
    query_release_version,
)
from infra.local.redis_server import LocalRedis
from notifactor.adapters.cassandra_session import CassandraSession, connect_cassandra
from notifactor.adapters.redis_client import open_redis

_used_servers: dict[str, str] = {}


async def _describe_redis(url: str) -> str:
    async with open_redis(url) as client:
        info = await client.info("server")
    redis_version = info["redis_version"]
    if "valkey_version" in info:
        return f"Valkey {info['valkey_version']!s} (redis_version {redis_version!s})"
    return f"{redis_version!s}"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis-compatible server for the whole session."""
    external = os.environ.get("NOTIFACTOR_TEST_REDIS_URL")
    if external:
        try:
            version = trio.run(_describe_redis, external)
        except Exception as error:
            pytest.fail(
                f"NOTIFACTOR_TEST_REDIS_URL={external} is not usable: {error!r}", pytrace=False
            )
        _used_servers["redis"] = f"real Redis {version} at {external} (external)"
        yield external
        return
    server = LocalRedis()
    try:
        url = server.start()
        version = trio.run(_describe_redis, url)
    except Exception as error:
        server.stop()
        pytest.fail(f"could not start a real Redis for the tests: {error}", pytrace=False)
    _used_servers["redis"] = (
        f"real Redis {version} at {url} (ready in {server.startup_seconds:.2f} s)"
    )
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cassandra_contact() -> Iterator[CassandraContact]:
    """Host and native port of a real Cassandra node for the whole session."""
    external = os.environ.get("NOTIFACTOR_TEST_CASSANDRA")
    if external:
        host, _, port = external.rpartition(":")
        try:
            contact = CassandraContact(host, int(port))
            version = query_release_version(contact)
        except Exception as error:
            pytest.fail(
                f"NOTIFACTOR_TEST_CASSANDRA={external} is not usable: {error!r}", pytrace=False
            )
        _used_servers["cassandra"] = f"real Cassandra {version} at {contact} (external)"
        yield contact
        return
    node: LocalCassandra | None = None
    try:
        node = LocalCassandra(lib_dir=fetch_jars())
        contact = node.start()
    except Exception as error:
        if node is not None:
            node.stop()
        pytest.fail(f"could not start a real Cassandra for the tests: {error}", pytrace=False)
    _used_servers["cassandra"] = (
        f"real Cassandra {node.release_version} at {contact} "
        f"(ready in {node.startup_seconds:.1f} s)"
    )
    try:
        yield contact
    finally:
        node.stop()


@pytest.fixture(scope="session")
def _cassandra_admin(cassandra_contact: CassandraContact) -> Iterator[Any]:
    """A plain synchronous driver session for creating and dropping test keyspaces."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    cluster = Cluster(
        contact_points=[(cassandra_contact.host, cassandra_contact.port)],
        port=cassandra_contact.port,
        protocol_version=5,
        execution_profiles={
            EXEC_PROFILE_DEFAULT: ExecutionProfile(
                load_balancing_policy=RoundRobinPolicy(), request_timeout=30.0
            )
        },
    )
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


@pytest.fixture
def cassandra_keyspace(_cassandra_admin: Any) -> Iterator[str]:
    """A fresh keyspace (SimpleStrategy, RF 1) for one test, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    _cassandra_admin.execute(
        f"CREATE KEYSPACE {name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    try:
        yield name
    finally:
        _cassandra_admin.execute(f"DROP KEYSPACE IF EXISTS {name}")


@pytest.fixture
async def cassandra_session(
    cassandra_contact: CassandraContact, cassandra_keyspace: str
) -> AsyncIterator[CassandraSession]:
    """A Trio-bridged session already using this test's own keyspace."""
    session = await connect_cassandra(
        [(cassandra_contact.host, cassandra_contact.port)], keyspace=cassandra_keyspace
    )
    async with session:
        yield session


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[coredis.Redis[bytes]]:
    """An entered client (bytes responses) on the session's server."""
    async with open_redis(redis_url) as client:
        yield client


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix unique to one test; every key under it is deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:16]}:"
    yield prefix
    with trio.CancelScope(shield=True):
        async with open_redis(redis_url) as client:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(keys)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say which real servers the run used, so a green run is visibly a real one."""
    parts = [_used_servers[name] for name in ("redis", "cassandra") if name in _used_servers]
    if parts:
        terminalreporter.write_line("notifactor: " + "; ".join(parts))
