"""Ctrl-C and start-up checks of the console script: real processes, real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from infra.local.cassandra_server import CassandraContact
from notifactor.adapters.cassandra_session import connect_cassandra
from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_dlq import DLQ_ENTRY_FIELD, ENVELOPE_FIELD
from notifactor.domain.dlq_entry import DlqEntry, encode_dlq_entry
from notifactor.domain.envelope import Envelope, encode_envelope, new_traceparent
from tests.e2e.cli_support import one_line

SECRET = "s" * 40


def _env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    return {**base, "NOTIFACTOR_JWT_SECRET": SECRET, **extra}


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notifactor", *args],
        capture_output=True,
        text=True,
        env=_env(env),
        cwd=cwd,
        timeout=120,
        check=False,
    )


async def _add_dead_letters(url: str, prefix: str, count: int) -> None:
    async with open_redis(url) as redis:
        for _ in range(count):
            now = datetime.now(UTC)
            nid = str(uuid.uuid4())
            envelope = Envelope(
                id=nid,
                tenant_id="acme",
                user_id="user-9",
                channel="alerts",
                content="x",
                accepted_at=now,
                traceparent=new_traceparent(),
            )
            entry = DlqEntry(
                reason="exhausted",
                notification_id=nid,
                tenant_id="acme",
                user_id="user-9",
                channel="alerts",
                attempts=8,
                last_error="boom",
                first_attempt_at=now,
                last_attempt_at=now,
                trace_id=None,
                source_stream=f"{prefix}stream:0",
                source_id="0-1",
                dead_at=now,
            )
            await redis.xadd(
                f"{prefix}dlq",
                {
                    DLQ_ENTRY_FIELD: encode_dlq_entry(entry),
                    ENVELOPE_FIELD: encode_envelope(envelope),
                },
            )


async def _replayed_count(url: str, prefix: str) -> int:
    async with open_redis(url) as redis:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}dlq-replayed:*")]
    return len(keys)


async def _wait_for_a_replay(url: str, prefix: str, process: subprocess.Popen[str]) -> None:
    with trio.fail_after(30):
        while await _replayed_count(url, prefix) == 0:
            assert process.poll() is None, "replay ended before it was interrupted"
            await trio.sleep(0.05)


def test_ctrl_c_during_dlq_replay_is_one_line_and_exit_130(redis_url: str, tmp_path: Path) -> None:
    prefix = f"nf-int-{uuid.uuid4().hex[:8]}:"
    trio.run(_add_dead_letters, redis_url, prefix, 20)
    env = _env(
        {
            "NOTIFACTOR_REDIS_URL": redis_url,
            "NOTIFACTOR_STORAGE_URL": f"sqlite://{tmp_path / 'n.db'}",
            "NOTIFACTOR_DATA_DIR": str(tmp_path / "var"),
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "notifactor", "dlq", "replay", "--rate", "2", "--prefix", prefix],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        trio.run(_wait_for_a_replay, redis_url, prefix, process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("notifactor: interrupted")
    assert "audited" in lines[0]


def _cassandra_url(contact: CassandraContact, keyspace: str) -> str:
    return f"cassandra://{contact.host}:{contact.port}/{keyspace}"


def _start_env(tmp_path: Path, storage_url: str) -> dict[str, str]:
    return {
        "NOTIFACTOR_STORAGE_URL": storage_url,
        "NOTIFACTOR_DATA_DIR": str(tmp_path / "var"),
        "NOTIFACTOR_HTTP_PORT": "0",
        "NOTIFACTOR_WS_PORT": "0",
        "NOTIFACTOR_LOG_FORMAT": "console",
    }


def test_serve_on_a_missing_keyspace_says_run_migrate(
    cassandra_contact: CassandraContact, tmp_path: Path
) -> None:
    keyspace = f"nf_absent_{uuid.uuid4().hex[:12]}"
    env = _start_env(tmp_path, _cassandra_url(cassandra_contact, keyspace))
    result = run_cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert line.startswith("notifactor: configuration error: storage_url:")
    assert f"keyspace {keyspace} does not exist" in line
    assert "notifactor migrate" in line


async def _keyspace_without_tables(contact: CassandraContact, keyspace: str) -> None:
    session = await connect_cassandra([(contact.host, contact.port)])
    try:
        await session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
    finally:
        await session.close()


async def _drop_keyspace(contact: CassandraContact, keyspace: str) -> None:
    session = await connect_cassandra([(contact.host, contact.port)])
    try:
        await session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
    finally:
        await session.close()


def test_serve_on_an_unmigrated_keyspace_says_run_migrate(
    cassandra_contact: CassandraContact, tmp_path: Path
) -> None:
    keyspace = f"nf_bare_{uuid.uuid4().hex[:12]}"
    trio.run(_keyspace_without_tables, cassandra_contact, keyspace)
    try:
        env = _start_env(tmp_path, _cassandra_url(cassandra_contact, keyspace))
        result = run_cli(
            "dispatcher", env={**env, "NOTIFACTOR_REDIS_URL": "redis://127.0.0.1:1/0"}, cwd=tmp_path
        )
    finally:
        trio.run(_drop_keyspace, cassandra_contact, keyspace)
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert f"keyspace {keyspace} is at schema version 0" in line
    assert "notifactor migrate" in line


@pytest.mark.parametrize("kind", ["directory", "not a database"])
def test_serve_on_an_unusable_sqlite_path_isone_line(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path = tmp_path / "a-dir"
        path.mkdir()
    else:
        path = tmp_path / "text.db"
        path.write_text("root:x:0:0:root:/root:/bin/bash\n" * 20, encoding="utf-8")
    result = run_cli("serve", env=_start_env(tmp_path, f"sqlite://{path}"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert line.startswith("notifactor: configuration error: storage_url:")
    assert kind in line


def test_an_existing_database_named_with_a_leading_double_slash_passes_the_check(
    tmp_path: Path,
) -> None:
    """``sqlite:////abs/path`` parses to a path starting with "//": still the same file."""
    import sqlite3

    from notifactor.storage_setup import check_sqlite_path

    database = tmp_path / "n.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE t (a)")
    connection.close()
    check_sqlite_path(Path("//" + str(database).lstrip("/")))  # raises if refused
    check_sqlite_path(tmp_path / "not yet created.db")  # a new file is fine too
