"""`notifactor migrate` against a real Cassandra, and on the SQLite default."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infra.local.cassandra_server import CassandraContact
from notifactor.adapters.cassandra_schema import LATEST_VERSION
from notifactor.adapters.cassandra_session import connect_cassandra

pytestmark = pytest.mark.integration


def run_migrate(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "notifactor", "migrate"],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def keyspace(cassandra_contact: CassandraContact) -> AsyncIterator[str]:
    name = f"nf_migrate_{uuid.uuid4().hex[:12]}"
    yield name
    session = await connect_cassandra([(cassandra_contact.host, cassandra_contact.port)])
    try:
        await session.execute(f"DROP KEYSPACE IF EXISTS {name}")
    finally:
        await session.close()


async def test_migrate_creates_the_keyspace_and_is_idempotent(
    cassandra_contact: CassandraContact, keyspace: str, tmp_path: Path
) -> None:
    env = {
        "NOTIFACTOR_STORAGE_URL": f"cassandra://{cassandra_contact.host}:{cassandra_contact.port}/{keyspace}",
        "NOTIFACTOR_LOG_FORMAT": "console",
    }
    first = run_migrate(env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"keyspace {keyspace} is at schema version {LATEST_VERSION}" in first.stdout
    second = run_migrate(env, tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"schema version {LATEST_VERSION}" in second.stdout

    session = await connect_cassandra([(cassandra_contact.host, cassandra_contact.port)])
    try:
        tables = await session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
        )
        names = {row.table_name for row in tables}
        assert {"notifications", "delivery_status", "tenant_audit_log", "schema_version"} <= names
        versions = await session.execute(f"SELECT version FROM {keyspace}.schema_version")
        assert sorted(row.version for row in versions) == list(range(1, LATEST_VERSION + 1))
        replication = await session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
        )
        assert replication[0].replication["class"].endswith("SimpleStrategy")
    finally:
        await session.close()


def test_migrate_unreachable_cassandra_is_one_line(tmp_path: Path) -> None:
    result = run_migrate(
        {
            "NOTIFACTOR_STORAGE_URL": "cassandra://127.0.0.1:1/nf_nowhere",
            "NOTIFACTOR_CASSANDRA__REQUEST_TIMEOUT_S": "2",
        },
        tmp_path,
    )
    assert result.returncode == 1
    # Logs (JSON lines) come first; the last line is the verdict for the operator.
    assert result.stderr.strip().splitlines()[-1].startswith("notifactor: migrate failed:")
    assert "Traceback" not in result.stderr


def test_migrate_on_sqlite_creates_the_schema(tmp_path: Path) -> None:
    result = run_migrate({"NOTIFACTOR_DATA_DIR": str(tmp_path / "var")}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "notifactor.db").exists()
    assert "SQLite schema ready" in result.stdout
