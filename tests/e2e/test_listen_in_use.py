"""Where a process cannot listen or store is a configuration error: one line, exit status 2.

Each command is started as a real process against a port this test holds
with a listening socket; it must refuse to start at once, without
tracebacks, naming the key to change.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_serve import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _run(
    command: str, env_extra: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    env.update(NOTIFACTOR_DATA_DIR=str(tmp_path / "data"), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "notifactor", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_dispatcher_whose_metrics_port_is_taken_exits_2_with_one_line(
    held_port: int, tmp_path: Path, redis_url: str
) -> None:
    done = _run(
        "dispatcher",
        {
            "NOTIFACTOR_REDIS_URL": redis_url,
            "NOTIFACTOR_OBSERVABILITY__METRICS_PORT": str(held_port),
        },
        tmp_path,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line == (
        "notifactor: configuration error: observability.metrics_port: "
        f"127.0.0.1:{held_port} is already in use by another process"
    )


@pytest.mark.parametrize("key", ["HTTP_PORT", "WS_PORT"])
def test_serve_whose_listening_port_is_taken_exits_2_with_one_line(
    key: str, held_port: int, tmp_path: Path
) -> None:
    ports = {"NOTIFACTOR_HTTP_PORT": str(free_port()), "NOTIFACTOR_WS_PORT": str(free_port())}
    ports[f"NOTIFACTOR_{key}"] = str(held_port)
    done = _run("serve", ports, tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()  # nothing logged before it
    assert line.startswith(f"notifactor: configuration error: {key.lower()}: ")
    assert line.endswith(f"127.0.0.1:{held_port} is already in use by another process")


@pytest.mark.parametrize(
    ("http_host", "ws_host"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("localhost", "127.0.0.1")],
)
def test_serve_with_one_port_for_http_and_websocket_exits_2_with_one_line(
    http_host: str, ws_host: str, tmp_path: Path
) -> None:
    port = str(free_port())
    done = _run(
        "serve",
        {
            "NOTIFACTOR_HTTP_HOST": http_host,
            "NOTIFACTOR_HTTP_PORT": port,
            "NOTIFACTOR_WS_HOST": ws_host,
            "NOTIFACTOR_WS_PORT": port,
        },
        tmp_path,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line == (
        f"notifactor: configuration error: ws_port: {ws_host}:{port} is also http_port; "
        "give each its own port"
    )


@pytest.mark.parametrize("where", ["under a file", "in /proc"])
def test_serve_whose_sqlite_file_cannot_be_created_exits_2_with_one_line(
    where: str, tmp_path: Path
) -> None:
    if where == "under a file":
        (tmp_path / "plain").write_text("not a directory")
        path = tmp_path / "plain" / "notifactor.db"
    else:
        path = Path("/proc/notifactor-test.db")
    done = _run(
        "serve",
        {
            "NOTIFACTOR_HTTP_PORT": str(free_port()),
            "NOTIFACTOR_WS_PORT": str(free_port()),
            "NOTIFACTOR_STORAGE_URL": f"sqlite:///{path}",
        },
        tmp_path,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("notifactor: configuration error: storage_url: cannot create ")
