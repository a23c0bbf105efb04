"""The pure parts of the local Cassandra launcher: yaml, java check, cache, command."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from infra.local.cassandra_server import (
    CASSANDRA_VERSION,
    PROJECT_DIR,
    CassandraLaunchError,
    cache_dir,
    daemon_command,
    java_executable,
    lib_dir_is_complete,
    parse_java_major,
    render_cassandra_yaml,
)


def _yaml_keys(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+): ?(.*)$", text, flags=re.MULTILINE))


def test_yaml_uses_the_given_ports_and_seeds_itself() -> None:
    text = render_cassandra_yaml(storage_port=17001, native_port=19043)
    keys = _yaml_keys(text)
    assert keys["storage_port"] == "17001"
    assert keys["native_transport_port"] == "19043"
    assert '- seeds: "127.0.0.1:17001"' in text
    assert keys["auto_snapshot"] == "false"


def test_yaml_has_every_key_cassandra_refuses_to_start_without() -> None:
    keys = _yaml_keys(render_cassandra_yaml(storage_port=1, native_port=2))
    for required in ("partitioner", "endpoint_snitch", "seed_provider", "commitlog_sync"):
        assert required in keys
    # ``periodic`` would also need ``commitlog_sync_period``; ``batch`` needs no
    # more, and acknowledges a write only once it is synced (SPEC §6 across a
    # kill -9 of the node: tests/integration/test_cassandra_durability.py).
    assert keys["commitlog_sync"] == "batch"
    assert "commitlog_sync_period" not in keys


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ("no version here", None),
    ],
)
def test_java_major_version(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFACTOR_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path / f"cassandra-{CASSANDRA_VERSION}"


def test_cache_dir_defaults_outside_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFACTOR_CACHE_DIR", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "notifactor" / f"cassandra-{CASSANDRA_VERSION}"


def test_lib_dir_is_complete_only_with_marker_and_all_jars(tmp_path: Path) -> None:
    assert not lib_dir_is_complete(tmp_path)
    (tmp_path / "a.jar").write_bytes(b"")
    assert not lib_dir_is_complete(tmp_path)  # jars without marker: interrupted fetch
    (tmp_path / ".complete").write_text("a.jar\nb.jar\n")
    assert not lib_dir_is_complete(tmp_path)  # marker names a jar that is gone
    (tmp_path / "b.jar").write_bytes(b"")
    assert lib_dir_is_complete(tmp_path)


def test_daemon_command_has_jdk17_and_test_flags(tmp_path: Path) -> None:
    command = daemon_command(
        java=Path("/usr/bin/java"), lib_dir=Path("/cache/lib"), workdir=tmp_path, setpriv=None
    )
    assert command[0] == "/usr/bin/java"
    assert command[-1] == "org.apache.cassandra.service.CassandraDaemon"
    assert command[command.index("-cp") + 1] == "/cache/lib/*"
    for flag in (
        "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
        "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
        "--add-opens=java.base/java.io=ALL-UNNAMED",
        "-Dcassandra-foreground=yes",
        "-Dcassandra.memtable.row_overhead_size=180",
        "-Dcassandra.shutdown_announce_in_ms=0",
        "-Xms512M",
        "-Xmx512M",
        f"-Dcassandra.config=file://{tmp_path}/cassandra.yaml",
        f"-Djava.io.tmpdir={tmp_path}/tmp",
        f"-Dcassandra.triggers_dir={tmp_path}/triggers",
    ):
        assert flag in command


def test_daemon_command_drops_ipc_lock_when_setpriv_exists(tmp_path: Path) -> None:
    command = daemon_command(
        java=Path("java"), lib_dir=tmp_path, workdir=tmp_path, setpriv="/usr/bin/setpriv"
    )
    assert command[:4] == ["/usr/bin/setpriv", "--bounding-set", "-ipc_lock", "java"]


def test_pom_pins_the_version_the_cache_is_named_after() -> None:
    pom = ET.parse(PROJECT_DIR / "pom.xml").getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    (dependency,) = pom.findall("m:dependencies/m:dependency", ns)
    assert dependency.findtext("m:artifactId", namespaces=ns) == "cassandra-all"
    assert dependency.findtext("m:version", namespaces=ns) == CASSANDRA_VERSION


def test_old_java_is_refused_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(CassandraLaunchError, match=r"11\.0\.2.*needs JDK 17\+"):
        java_executable()
