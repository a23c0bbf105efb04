"""A ``notifactor dispatcher`` process's ``/health`` follows its Redis through an outage.

The consumers wait out an outage without crashing, so the supervision tree
stays healthy through one; ``/health`` must still say that Redis is not
answering, for an orchestrator or a monitor watching the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.local.redis_server import LocalRedis
from tests.e2e.test_serve import free_port


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[tuple[LocalRedis, str, subprocess.Popen[bytes]]]:
    server = LocalRedis()
    url = server.start()
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    env = {
        **base,
        "NOTIFACTOR_REDIS_URL": url,
        "NOTIFACTOR_DATA_DIR": str(tmp_path / "var"),
        "NOTIFACTOR_OBSERVABILITY__METRICS_PORT": str(port),
        "NOTIFACTOR_SUPERVISION__PARTITIONS": "2",
    }
    log = (tmp_path / "dispatcher.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "notifactor", "dispatcher"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        yield server, f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log.close()
        server.stop()


def _health_until(base_url: str, status: int, timeout_s: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(f"{base_url}/health", timeout=5.0)
            if last.status_code == status:
                return last
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"/health never answered {status}; last: {last and last.text}")


def test_health_names_redis_while_it_is_stalled_or_gone(
    dispatcher: tuple[LocalRedis, str, subprocess.Popen[bytes]],
) -> None:
    server, base_url, process = dispatcher
    healthy = _health_until(base_url, 200)
    assert healthy.json() == {
        "status": "ok",
        "checks": {"redis": "ok", "storage": "ok", "supervision": "ok"},
    }
    os.kill(server.pid, signal.SIGSTOP)  # answers nothing
    try:
        stalled = _health_until(base_url, 503)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert stalled.json()["checks"] == {"redis": "timeout", "storage": "ok", "supervision": "ok"}
    assert stalled.json()["failing"] == ["redis"]
    assert "details" not in stalled.json()  # a Redis error is for the log, not the response
    assert int(stalled.headers["retry-after"]) >= 1
    assert _health_until(base_url, 200).json()["status"] == "ok"

    server.stop()  # gone: connections refused
    gone = _health_until(base_url, 503)
    assert gone.json()["checks"]["redis"] in {"fail", "timeout"}
    assert gone.json()["checks"]["supervision"] == "ok"  # the consumers wait it out
    assert process.poll() is None
