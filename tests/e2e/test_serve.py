"""`notifactor serve` as an operator runs it: a real process on its embedded defaults."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from websockets.sync.client import connect

from notifactor.auth.tokens import mint_token

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define
class ServeProcess:
    process: subprocess.Popen[str]
    data_dir: Path
    base_url: str
    log_path: Path
    ws_port: int

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
        return {**base, "NOTIFACTOR_DATA_DIR": str(self.data_dir)}

    def token(self, tenant: str, sub: str, scope: str | None = None) -> str:
        args = [sys.executable, "-m", "notifactor", "token", "--tenant", tenant, "--sub", sub]
        if scope is not None:
            args += ["--scope", scope]
        result = subprocess.run(args, env=self.env(), capture_output=True, text=True, check=True)
        return result.stdout.strip()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8").splitlines()


def _redis_server_pids(data_dir: Path) -> list[int]:
    result = subprocess.run(
        ["pgrep", "-f", "--", f"unixsocket:{data_dir}/redis/redis.sock"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(pid) for pid in result.stdout.split()]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    with running_serve(tmp_path) as running:
        yield running


@contextlib.contextmanager
def running_serve(tmp_path: Path, **extra_env: str) -> Iterator[ServeProcess]:
    """``notifactor serve`` in ``tmp_path`` until the block ends (killed if still running)."""
    data_dir = tmp_path / "var"
    port = free_port()
    ws_port = free_port()
    log_path = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    env.update(
        NOTIFACTOR_DATA_DIR=str(data_dir),
        NOTIFACTOR_HTTP_PORT=str(port),
        NOTIFACTOR_WS_PORT=str(ws_port),
        NOTIFACTOR_LOG_FORMAT="json",
        # Admin tokens of tenant "ops" may read the supervision tree remotely.
        NOTIFACTOR_OBSERVABILITY__TREE_OPERATOR_TENANTS="ops",
        **extra_env,
    )
    with log_path.open("w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "notifactor", "serve"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path,
        )
    running = ServeProcess(process, data_dir, f"http://127.0.0.1:{port}", log_path, ws_port)
    try:
        _wait_live(running)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _wait_live(running: ServeProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            pytest.fail(
                f"serve exited with {running.process.returncode}:\n{running.log_path.read_text()}"
            )
        try:
            if httpx.get(f"{running.base_url}/health/live", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"serve did not answer within {START_TIMEOUT_S}s:\n{running.log_path.read_text()}")


def test_serve_accepts_a_notification_and_stops_cleanly(serve: ServeProcess) -> None:
    token = serve.token("acme", "user-1")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"tenant_id": "acme", "user_id": "user-1", "channel": "alerts", "content": "hello"}
    with httpx.Client(base_url=serve.base_url, timeout=10.0) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json() == {
            "status": "ok",
            "checks": {"redis": "ok", "storage": "ok", "supervision": "ok"},
        }
        created = client.post("/v1/notifications", json=body, headers=headers)
        assert created.status_code == 202
        notification_id = created.json()["id"]
        assert created.headers["location"] == f"/v1/notifications/{notification_id}"
        fetched = client.get(f"/v1/notifications/{notification_id}", headers=headers)
        assert fetched.status_code == 200
        # At least `accepted`: the dispatcher in the same process may have stored it already.
        assert fetched.json()["status"] in ("accepted", "pending")

    assert _redis_server_pids(serve.data_dir), "the embedded server should be running"
    serve.process.send_signal(signal.SIGTERM)
    # Well inside the 10 s grace: every child stops when asked, none is left to
    # be cancelled at the end of its budget.
    try:
        code = serve.process.wait(timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve still running 8 s after SIGTERM:\n{serve.log_path.read_text()[-6000:]}")
    assert code == 0
    events = [json.loads(line).get("event") for line in serve.log_path.read_text().splitlines()]
    assert "gc_freeze" in events  # [runtime] gc_freeze_after_start, once the tree was up
    assert _redis_server_pids(serve.data_dir) == []
    # The SQLite store and the embedded server's data live under the data dir.
    assert (serve.data_dir / "notifactor.db").exists()
    assert (serve.data_dir / "redis").is_dir()


def test_serve_dispatches_an_offline_users_notification_to_pending(serve: ServeProcess) -> None:
    token = serve.token("acme", "offline-user")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"tenant_id": "acme", "user_id": "offline-user", "channel": "alerts", "content": "later"}
    with httpx.Client(base_url=serve.base_url, timeout=10.0) as client:
        notification_id = client.post("/v1/notifications", json=body, headers=headers).json()["id"]
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            status = client.get(f"/v1/notifications/{notification_id}", headers=headers).json()[
                "status"
            ]
            if status == "pending":
                break
            time.sleep(0.05)
        assert status == "pending"
        deliveries = client.get(
            "/v1/tenants/acme/deliveries", params={"user_id": "offline-user"}, headers=headers
        )
        assert deliveries.status_code == 200
        assert [item["notification_id"] for item in deliveries.json()["items"]] == [notification_id]


def test_serve_takes_a_short_jwt_secret_with_a_warning(tmp_path: Path) -> None:
    """SPEC §2 sets no length: a short HS256 secret works, and the log says it is weak."""
    secret = "test-secret"
    with running_serve(tmp_path, NOTIFACTOR_JWT_SECRET=secret) as running:
        token = mint_token(
            secret=secret,
            tenant_id="acme",
            subject="user-1",
            scopes=("notifications:write",),
            ttl_s=600,
            now=int(time.time()),
        )
        body = {"tenant_id": "acme", "user_id": "user-1", "channel": "alerts", "content": "hi"}
        created = httpx.post(
            f"{running.base_url}/v1/notifications",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
        )
        assert created.status_code == 202
        warnings = [line for line in running.log_lines() if '"event":"weak_jwt_secret"' in line]
        assert len(warnings) == 1
        assert secret not in warnings[0]
        assert not (running.data_dir / "jwt_secret").exists()


def test_serve_generates_a_private_jwt_secret(serve: ServeProcess) -> None:
    secret_file = serve.data_dir / "jwt_secret"
    assert secret_file.exists()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert any(str(secret_file) in line for line in serve.log_lines())


def test_serve_logs_are_json_lines_without_tokens(serve: ServeProcess) -> None:
    token = serve.token("acme", "user-2")
    with httpx.Client(base_url=serve.base_url, timeout=10.0) as client:
        client.get("/v1/notifications/nope", headers={"Authorization": f"Bearer {token}"})
        client.get("/v1/notifications/nope", headers={"Authorization": "Bearer not-a-token"})
    serve.process.send_signal(signal.SIGINT)
    assert serve.process.wait(timeout=20) == 0
    lines = serve.log_lines()
    assert lines
    for line in lines:
        record = json.loads(line)
        assert {"ts", "level", "logger", "instance_id", "message"} <= record.keys()
    text = "\n".join(lines)
    assert token not in text
    assert "not-a-token" not in text


def test_embedded_redis_dies_with_a_killed_serve(serve: ServeProcess) -> None:
    assert _redis_server_pids(serve.data_dir)
    serve.process.kill()
    serve.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _redis_server_pids(serve.data_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _redis_server_pids(serve.data_dir) == []


def test_serve_restarts_embedded_redis_after_a_crash(serve: ServeProcess) -> None:
    [pid] = _redis_server_pids(serve.data_dir)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    token = serve.token("acme", "user-3")
    body = {"tenant_id": "acme", "user_id": "user-3", "channel": "alerts", "content": "again"}
    status = None
    while time.monotonic() < deadline:
        try:
            status = httpx.post(
                f"{serve.base_url}/v1/notifications",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=2.0,
            ).status_code
        except httpx.TransportError:
            status = None
        if status == 202:
            break
        time.sleep(0.1)
    assert status == 202
    assert _redis_server_pids(serve.data_dir) not in ([], [pid])


def _wait_status(
    client: httpx.Client, notification_id: str, headers: dict[str, str], want: str
) -> str:
    deadline = time.monotonic() + 15
    status = ""
    while time.monotonic() < deadline:
        status = client.get(f"/v1/notifications/{notification_id}", headers=headers).json()[
            "status"
        ]
        if status == want:
            break
        time.sleep(0.05)
    return status


def test_serve_delivers_to_a_live_socket_and_records_the_ack(serve: ServeProcess) -> None:
    token = serve.token("acme", "live-user")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"ws://127.0.0.1:{serve.ws_port}/ws?token={token}"
    with (
        connect(url, open_timeout=10) as socket,
        httpx.Client(base_url=serve.base_url, timeout=10.0) as client,
    ):
        welcome = json.loads(socket.recv(timeout=10))
        assert welcome["type"] == "welcome"
        assert (welcome["tenant_id"], welcome["user_id"]) == ("acme", "live-user")
        socket.send(json.dumps({"type": "subscribe", "channels": ["alerts"]}))
        assert json.loads(socket.recv(timeout=10)) == {"type": "subscribed", "channels": ["alerts"]}
        body = {"tenant_id": "acme", "user_id": "live-user", "channel": "alerts", "content": "now"}
        notification_id = client.post("/v1/notifications", json=body, headers=headers).json()["id"]
        frame = json.loads(socket.recv(timeout=10))
        assert frame["type"] == "notification"
        assert frame["id"] == notification_id
        assert frame["content"] == "now"
        assert frame["cursor"]
        assert _wait_status(client, notification_id, headers, "delivered") == "delivered"
        socket.send(json.dumps({"type": "ack", "id": notification_id}))
        assert _wait_status(client, notification_id, headers, "acked") == "acked"


def test_listen_command_prints_frames(serve: ServeProcess) -> None:
    env = {
        **serve.env(),
        "NOTIFACTOR_WS_PORT": str(serve.ws_port),
    }
    listener = subprocess.Popen(
        [sys.executable, "-m", "notifactor", "listen", "--tenant", "acme", "--sub", "listener"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        welcome = json.loads(listener.stdout.readline())
        assert welcome["type"] == "welcome"
        token = serve.token("acme", "sender")
        body = {"tenant_id": "acme", "user_id": "listener", "channel": "news", "content": "hi"}
        notification_id = httpx.post(
            f"{serve.base_url}/v1/notifications",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
        ).json()["id"]
        frame = json.loads(listener.stdout.readline())
        assert (frame["type"], frame["id"], frame["content"]) == (
            "notification",
            notification_id,
            "hi",
        )
    finally:
        listener.send_signal(signal.SIGINT)
        listener.wait(timeout=10)


def test_a_second_serve_on_the_same_data_dir_is_refused_and_the_first_keeps_working(
    serve: ServeProcess,
) -> None:
    """Two servers on one data dir would share the AOF and the socket: the second exits 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    env.update(
        NOTIFACTOR_DATA_DIR=str(serve.data_dir),
        NOTIFACTOR_HTTP_PORT=str(free_port()),
        NOTIFACTOR_WS_PORT=str(free_port()),
    )
    second = subprocess.run(
        [sys.executable, "-m", "notifactor", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 2
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith("notifactor: configuration error: data_dir:")
    assert "in use by another `notifactor serve`" in line
    token = serve.token("acme", "user-1")
    body = {"tenant_id": "acme", "user_id": "user-1", "channel": "alerts", "content": "still"}
    with httpx.Client(base_url=serve.base_url, timeout=10.0) as client:
        assert client.get("/health").json()["checks"]["redis"] == "ok"
        created = client.post(
            "/v1/notifications", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 202
