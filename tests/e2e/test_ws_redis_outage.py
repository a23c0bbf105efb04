"""A Redis outage while WebSocket sessions are open: the sessions stay, delivery resumes.

The gateway's delivery stream consumer reads Redis all the time. Redis going
away (killed, restarted on the same port, its data kept by the AOF) must
not close the open sessions or restart the edge: the consumer waits the
outage out, and live notifications reach the same session afterwards.
This test runs its own Redis, since it kills it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

from infra.local.processes import LOCALHOST, pick_free_ports, start_tied_process, stop_process
from infra.local.redis_server import answers_ping
from notifactor.adapters.embedded_redis import find_server_binary, server_command
from tests.e2e.stores import Storage
from tests.e2e.ws_support import TEST_EDGE, running_stack

pytestmark = pytest.mark.e2e


@attrs.define
class KillableRedis:
    """A Redis-compatible server that can be killed and started again on its port."""

    workdir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    def start(self) -> None:
        command = server_command(
            find_server_binary(), self.workdir, unix_socket=None, port=self.port
        )
        self.process = start_tied_process(
            command, log_path=self.workdir / "server.log", cwd=self.workdir
        )
        for _ in range(1000):
            if answers_ping(self.port):
                return
            time.sleep(0.01)
        raise RuntimeError("the server did not answer PING")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=5)
            self.process = None


@pytest.fixture
def killable_redis() -> Iterator[KillableRedis]:
    workdir = Path(tempfile.mkdtemp(prefix="nf-outage-", dir="/tmp"))
    (port,) = pick_free_ports(1)
    server = KillableRedis(workdir=workdir, port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_sessions_stay_open_through_a_redis_outage_and_delivery_resumes(
    killable_redis: KillableRedis, tmp_path: Path, redis_prefix: str
) -> None:
    settings = attrs.evolve(TEST_EDGE, presence_heartbeat_s=0.2)
    storage: Storage = None  # SQLite: the outage is Redis's
    async with running_stack(
        killable_redis.url, tmp_path, redis_prefix, storage=storage, settings=settings
    ) as s:
        alice = await s.connect("acme", "alice")
        before = await s.post("acme", "alice", content="before the outage")
        while (frame := await alice.recv_json(within_s=5))["type"] != "notification":
            pass
        assert frame["id"] == before

        await trio.to_thread.run_sync(killable_redis.kill)
        await trio.sleep(3)  # many consumer reads fail meanwhile
        await trio.to_thread.run_sync(killable_redis.start)

        # The session was not closed: it answers, and nothing was restarted.
        await alice.send_json({"type": "ping"})
        assert await alice.recv_json(within_s=5) == {"type": "pong"}
        (ws,) = s.edge_root.statistics().children
        assert ws.restarts == 0
        assert all(child.restarts == 0 for child in ws.children if child.id != "sessions")

        # Live delivery resumes to the same session.
        with trio.fail_after(20):
            while True:
                try:
                    after = await s.post("acme", "alice", content="after the outage")
                    break
                except AssertionError:  # 503 until the gateway reaches Redis again
                    await trio.sleep(0.2)
        while (frame := await alice.recv_json(within_s=10))["type"] != "notification":
            pass
        assert frame["id"] == after
        await alice.close()
