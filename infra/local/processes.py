"""Synchronous process and port helpers shared by the local server launchers.

The launchers run from pytest fixtures and from small CLIs, outside Trio, so
they use plain :mod:`subprocess` and :mod:`socket`. Every server is started
with a parent-death signal so a killed test run never leaves a JVM or a Redis
behind, and every stop reaps the child: a zombie still passes ``kill(pid, 0)``.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from notifactor.adapters.embedded_redis import die_with_parent

LOCALHOST = "127.0.0.1"


def pick_free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports on 127.0.0.1 that were free just now.

    All sockets are held open until every port is chosen, so the kernel cannot
    hand out the same port twice. Another process can still take a port before
    the server binds it; callers re-check with :func:`port_is_free` and verify
    their own PID is alive before trusting a probe.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int) -> bool:
    """Tell whether a server could bind 127.0.0.1:``port`` right now.

    ``SO_REUSEADDR`` mirrors what Redis and the JVM set, so a port that only
    has TIME_WAIT leftovers counts as free while a listening one does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def start_tied_process(
    command: Sequence[str], *, log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` with stdout and stderr appended to ``log_path``.

    The child gets SIGTERM when the thread that started it dies. Fixtures and
    the CLIs start servers from the main thread, which lives as long as the
    process, so this amounts to "dies with the test run".
    """
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            preexec_fn=die_with_parent(),  # noqa: PLW1509 -- prctl only
        )


def stop_process(process: subprocess.Popen[bytes], *, grace: float) -> int:
    """SIGTERM ``process``, wait up to ``grace`` seconds, then SIGKILL; always reap.

    Returns:
        The exit status (Cassandra reports 143 even on a clean stop).
    """
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def tail(path: Path, lines: int) -> str:
    """Return the last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(process: subprocess.Popen[bytes]) -> bool:
    """Tell whether the child still runs; ``poll`` also reaps it if it exited."""
    return process.poll() is None
