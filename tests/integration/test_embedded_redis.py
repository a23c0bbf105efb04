"""The embedded server that ``notifactor serve`` runs: start, answer, stop, recover."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from notifactor.adapters.embedded_redis import (
    EmbeddedRedisError,
    lock_workdir,
    run_embedded_redis,
    wait_until_answers_ping,
)
from notifactor.adapters.redis_client import open_redis

pytestmark = pytest.mark.integration


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _server_pid(url: str) -> int:
    async with open_redis(url) as client:
        info = await client.info("server")
    pid = info["process_id"]
    assert isinstance(pid, int)
    return pid


async def test_starts_answers_and_is_gone_after_cancel(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(run_embedded_redis, tmp_path / "redis")
        assert url.startswith("unix://")
        async with open_redis(url) as client:
            assert await client.ping() == b"PONG"
            await client.xadd("s", {"k": "v"})
            assert await client.xlen("s") == 1
        pid = await _server_pid(url)
        assert _process_exists(pid)
        nursery.cancel_scope.cancel()

    # Cancelling waits for the reap, so the PID is gone, not a zombie.
    assert not _process_exists(pid)
    assert not await trio.Path(url.removeprefix("unix://")).exists()


async def test_restart_on_same_dir_recovers_stream_from_aof(tmp_path: Path) -> None:
    workdir = tmp_path / "redis"
    async with trio.open_nursery() as nursery:
        url = await nursery.start(run_embedded_redis, workdir)
        async with open_redis(url) as client, client.pipeline(transaction=False) as pipe:
            for i in range(100):
                pipe.xadd("events", {"i": str(i)})
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        url = await nursery.start(run_embedded_redis, workdir)
        async with open_redis(url) as client:
            assert await client.xlen("events") == 100
        nursery.cancel_scope.cancel()


async def test_outlives_trio_worker_thread_idle_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* exits. trio.run_process
    # forks on a pooled thread that exits after IDLE_TIMEOUT (10 s) idle, which
    # killed the server 10 s after launch. Shrink the timeout so a regression
    # shows in a fraction of a second.
    monkeypatch.setattr("trio._core._thread_cache.IDLE_TIMEOUT", 0.05)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(run_embedded_redis, tmp_path / "redis")
        pid = await _server_pid(url)
        await trio.sleep(0.5)  # the window under test: ten idle timeouts
        assert _process_exists(pid)
        assert await _server_pid(url) == pid
        nursery.cancel_scope.cancel()


async def test_deep_workdir_puts_socket_in_short_tmp_dir(tmp_path: Path) -> None:
    workdir = tmp_path / ("d" * 60) / ("e" * 60)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(run_embedded_redis, workdir)
        socket_path = Path(url.removeprefix("unix://"))
        assert len(os.fsencode(socket_path)) < 108
        assert not socket_path.is_relative_to(workdir)
        async with open_redis(url) as client:
            assert await client.ping() == b"PONG"
        nursery.cancel_scope.cancel()
    assert not socket_path.parent.exists()
    assert list(workdir.glob("appendonlydir/*.aof"))  # data still lives in the workdir


async def test_server_that_dies_is_reported(tmp_path: Path) -> None:
    with pytest.RaisesGroup(pytest.RaisesExc(EmbeddedRedisError, match="unexpectedly")):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(run_embedded_redis, tmp_path / "redis")
            os.kill(await _server_pid(url), signal.SIGKILL)


async def test_binary_that_never_answers_fails_before_started(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="before answering"):
        await run_embedded_redis(tmp_path / "redis", binary=Path("/bin/false"))


async def test_relative_workdir_is_anchored_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `serve` with the default data dir `./var` passes a relative path.
    monkeypatch.chdir(tmp_path)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(run_embedded_redis, Path("var/redis"))
        async with open_redis(url) as client:
            assert await client.ping() == b"PONG"
        nursery.cancel_scope.cancel()
    assert (tmp_path / "var" / "redis" / "server.log").exists()


class _RunningChild:
    """Stands for a started server process that has not exited."""

    def __init__(self) -> None:
        self.exited = trio.Event()
        self.returncode: int | None = None


async def _answering(path: Path, replies: list[bytes], *, task_status: Any) -> None:
    """A unix-socket server answering each connection with the next reply."""
    sock = trio.socket.socket(trio.socket.AF_UNIX)
    await sock.bind(str(path))
    sock.listen()
    listener = trio.SocketListener(sock)
    task_status.started()
    while replies:
        stream = await listener.accept()
        async with stream:
            await stream.receive_some(64)
            await stream.send_all(replies.pop(0))


async def test_a_server_loading_its_data_is_waited_for_beyond_the_start_bound(
    tmp_path: Path,
) -> None:
    """-LOADING is an answer: the start bound no longer applies, PONG still ends the wait."""
    path = tmp_path / "s.sock"
    loading = b"-LOADING Redis is loading the dataset in memory\r\n"
    async with trio.open_nursery() as nursery:
        await nursery.start(_answering, path, [loading, loading, b"+PONG\r\n"])
        child: Any = _RunningChild()
        assert await wait_until_answers_ping(path, child, loading_is_an_answer=True)
        assert not await wait_until_answers_ping(path, child)  # one more LOADING, then PONG


def test_a_workdir_can_be_taken_by_one_process_only(tmp_path: Path) -> None:
    fd = lock_workdir(tmp_path / "redis")
    try:
        pid = os.fork()
        if pid == 0:  # another process tries the same directory
            try:
                lock_workdir(tmp_path / "redis")
            except EmbeddedRedisError:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
    os.close(lock_workdir(tmp_path / "redis"))  # free again once closed
