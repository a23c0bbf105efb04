"""A real Redis-compatible server for tests, started synchronously.

The same binary and command line as ``notifactor serve``
(:mod:`notifactor.adapters.embedded_redis`), but launched with plain
``subprocess`` because pytest session fixtures run outside Trio. It listens on
a free TCP port (so the URL is an ordinary ``redis://``) and on a unix socket
in a short temporary directory under /tmp.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from infra.local.processes import (
    LOCALHOST,
    pick_free_ports,
    pid_alive,
    port_is_free,
    start_tied_process,
    stop_process,
    tail,
)
from notifactor.adapters.embedded_redis import find_server_binary, server_command

DEFAULT_STARTUP_TIMEOUT = 10.0
STOP_GRACE_SECONDS = 10.0
LOG_TAIL_LINES = 40


class RedisLaunchError(RuntimeError):
    """The server binary is missing, exited, or never answered PING."""


def answers_ping(port: int) -> bool:
    """Send a raw inline ``PING`` and tell whether the reply is ``+PONG``.

    Raw bytes rather than a client library: this must work before any client
    is configured and must not depend on the code under test.
    """
    try:
        with socket.create_connection((LOCALHOST, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class LocalRedis:
    """One server in a temporary directory, tied to this process.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self, *, binary: Path | None = None, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    ) -> None:
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.workdir: Path | None = None
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` once started."""
        if self.port is None:
            raise RuntimeError("LocalRedis is not started")
        return f"redis://{LOCALHOST}:{self.port}/0"

    @property
    def pid(self) -> int:
        """The server's process id once started (for CPU accounting in benches)."""
        if self._process is None:
            raise RuntimeError("LocalRedis is not started")
        return self._process.pid

    @property
    def unix_socket(self) -> Path:
        """The server's unix socket, for tests that want ``unix://``."""
        if self.workdir is None:
            raise RuntimeError("LocalRedis is not started")
        return self.workdir / "r.sock"

    def start(self) -> str:
        """Launch the server and return its URL once it answers PING.

        Raises:
            RedisLaunchError: no binary, port taken, the process exited, or no
                PING within ``startup_timeout``; the log tail is in the message.
        """
        binary = self.binary or find_server_binary()
        (port,) = pick_free_ports(1)
        if not port_is_free(port):
            raise RedisLaunchError(f"port {port} was taken before the server started")
        # Short on purpose: the socket path must stay under 108 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="nf-redis-", dir="/tmp"))
        log_path = self.workdir / "server.log"
        command = server_command(binary, self.workdir, unix_socket=self.unix_socket, port=port)
        started_at = time.monotonic()
        self._process = start_tied_process(command, log_path=log_path, cwd=self.workdir)
        try:
            self._wait_for_ping(port, started_at, log_path)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started_at
        self.port = port
        return self.url

    def _wait_for_ping(self, port: int, started_at: float, log_path: Path) -> None:
        assert self._process is not None
        deadline = started_at + self.startup_timeout
        while time.monotonic() < deadline:
            if not pid_alive(self._process):
                self._fail(f"server exited with status {self._process.returncode}", log_path)
            if answers_ping(port):
                return
            time.sleep(0.01)
        self._fail(f"no PONG within {self.startup_timeout:.0f} s", log_path)

    def _fail(self, reason: str, log_path: Path) -> None:
        message = f"{reason}\n--- {log_path} ---\n{tail(log_path, LOG_TAIL_LINES)}"
        print(message, file=sys.stderr)
        raise RedisLaunchError(message)

    def stop(self) -> None:
        """SIGTERM the server, wait (bounded, then SIGKILL), reap it, remove its files."""
        if self._process is not None:
            stop_process(self._process, grace=STOP_GRACE_SECONDS)
            self._process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self.port = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
