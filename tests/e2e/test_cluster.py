"""Several processes sharing one Redis and one Cassandra: gateways and dispatchers.

Two `notifactor gateway` and two `notifactor dispatcher` processes; every
notification POSTed to either gateway is stored by one of the dispatchers,
also when one dispatcher is killed with SIGKILL while the stream is flowing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from websockets.sync.client import connect

from infra.local.cassandra_server import CassandraContact
from tests.e2e.test_serve import free_port

pytestmark = pytest.mark.e2e

SECRET = "cluster-secret-" + "c" * 40
TENANT = "cluster-tenant"


@attrs.define
class Node:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ws_port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _wait_live(node: Node, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            pytest.fail(f"{node.name} exited with {node.process.returncode}:\n{node.log()}")
        try:
            if httpx.get(f"{node.base_url}/health/live", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{node.name} not live within {timeout_s}s:\n{node.log()}")


@attrs.define
class Cluster:
    env: dict[str, str]
    tmp: Path
    nodes: list[Node] = attrs.Factory(list)

    def start(self, role: str, name: str) -> Node:
        port = free_port()
        ws_port = free_port() if role == "gateway" else None
        env = {**self.env, "NOTIFACTOR_INSTANCE_ID": name}
        if role == "gateway":
            env.update(NOTIFACTOR_HTTP_PORT=str(port), NOTIFACTOR_WS_PORT=str(ws_port))
        else:
            env.update(NOTIFACTOR_OBSERVABILITY__METRICS_PORT=str(port))
        log_path = self.tmp / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "notifactor", role],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.tmp,
            )
        node = Node(name, process, port, log_path, ws_port)
        self.nodes.append(node)
        _wait_live(node)
        return node

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            try:
                node.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=10)


@pytest.fixture
def cluster(
    redis_url: str, cassandra_contact: CassandraContact, tmp_path: Path
) -> Iterator[Cluster]:
    keyspace = f"nf_cluster_{os.getpid()}_{int(time.time())}"
    # A database of its own, so other tests' streams are not consumed here.
    isolated_redis = redis_url.rsplit("/", 1)[0] + "/9"
    base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    env = {
        **base,
        "NOTIFACTOR_REDIS_URL": isolated_redis,
        "NOTIFACTOR_STORAGE_URL": f"cassandra://{cassandra_contact.host}:{cassandra_contact.port}/{keyspace}",
        "NOTIFACTOR_JWT_SECRET": SECRET,
        "NOTIFACTOR_DATA_DIR": str(tmp_path / "var"),
        "NOTIFACTOR_LOG_FORMAT": "json",
        "NOTIFACTOR_SUPERVISION__PARTITIONS": "4",
        "NOTIFACTOR_DISPATCHER__BLOCK_MS": "200",
        "NOTIFACTOR_DISPATCHER__ATTEMPT_TIMEOUT_S": "1",
        "NOTIFACTOR_DISPATCHER__CLAIM_IDLE_MS": "2000",
        "NOTIFACTOR_DISPATCHER__CLAIM_INTERVAL_S": "0.5",
        "NOTIFACTOR_TENANTS__DEFAULT__RATE_PER_S": "100000",
        "NOTIFACTOR_TENANTS__DEFAULT__BURST": "100000",
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "notifactor", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    running = Cluster(env=env, tmp=tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def _token(
    subject: str = "sender",
    scopes: tuple[str, ...] = ("notifications:write", "notifications:read"),
) -> str:
    from notifactor.auth.tokens import mint_token

    return mint_token(
        secret=SECRET,
        tenant_id=TENANT,
        subject=subject,
        scopes=scopes,
        ttl_s=600,
        now=int(time.time()),
    )


def _post_many(gateways: list[Node], count: int, token: str) -> list[str]:
    ids = []
    headers = {"Authorization": f"Bearer {token}"}
    clients = [httpx.Client(base_url=g.base_url, timeout=10.0) for g in gateways]
    try:
        for i in range(count):
            body = {
                "tenant_id": TENANT,
                "user_id": f"user-{i % 13}",
                "channel": "alerts",
                "content": f"n{i}",
            }
            response = clients[i % len(clients)].post(
                "/v1/notifications", json=body, headers=headers
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
    finally:
        for client in clients:
            client.close()
    return ids


def _statuses(gateway: Node, ids: list[str], token: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=gateway.base_url, timeout=10.0) as client:
        return {
            nid: client.get(f"/v1/notifications/{nid}", headers=headers).json()["status"]
            for nid in ids
        }


def _audited_ids(gateway: Node, want: int, timeout_s: float) -> set[str]:
    """Notification ids in the tenant's ``notifications.accepted`` audit events."""
    headers = {"Authorization": f"Bearer {_token('auditor', scopes=('admin',))}"}
    deadline = time.monotonic() + timeout_s
    ids: set[str] = set()
    with httpx.Client(base_url=gateway.base_url, timeout=10.0) as client:
        while time.monotonic() < deadline:
            ids, cursor = set(), None
            while True:
                params = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
                page = client.get("/v1/admin/audit", params=params, headers=headers).json()
                for event in page["items"]:
                    if event["event_type"] == "notifications.accepted":
                        ids.update(event["metadata"]["notification_ids"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            if len(ids) >= want:
                break
            time.sleep(0.3)
    return ids


def _wait_all_pending(
    gateway: Node, ids: list[str], token: str, timeout_s: float
) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = _statuses(gateway, ids, token)
        if all(status == "pending" for status in statuses.values()):
            return statuses
        time.sleep(0.3)
    return statuses


def test_two_gateways_two_dispatchers_survive_a_killed_dispatcher(cluster: Cluster) -> None:
    gateways = [cluster.start("gateway", "gw-a"), cluster.start("gateway", "gw-b")]
    dispatchers = [cluster.start("dispatcher", "dp-a"), cluster.start("dispatcher", "dp-b")]
    token = _token()

    first = _post_many(gateways, 60, token)
    # Kill one dispatcher while more notifications flow in; its pending
    # entries must be claimed by the other one.
    dispatchers[0].process.send_signal(signal.SIGKILL)
    dispatchers[0].process.wait(timeout=10)
    second = _post_many(gateways, 60, token)

    statuses = _wait_all_pending(gateways[1], first + second, token, timeout_s=60)
    not_pending = {nid: s for nid, s in statuses.items() if s != "pending"}
    assert not_pending == {}, (
        f"{len(not_pending)} not stored as pending:\n{dispatchers[1].log()[-4000:]}"
    )

    # Both gateway processes put what they accepted on the tenant's audit
    # trail in Cassandra; either gateway lists all of it.
    assert _audited_ids(gateways[0], len(first + second), timeout_s=15) == set(first + second)

    # The survivor's metrics port answers Prometheus text with the dispatcher's series.
    metrics = httpx.get(f"{dispatchers[1].base_url}/metrics", timeout=5.0).text
    assert "stream_consumer_lag" in metrics
    assert "actor_restarts_total" in metrics

    # ... and its health and live tree, as `notifactor tree --metrics` reads it.
    health = httpx.get(f"{dispatchers[1].base_url}/health", timeout=5.0)
    assert health.status_code == 200, health.text
    assert health.json()["checks"] == {"redis": "ok", "storage": "ok", "supervision": "ok"}
    env = {**cluster.env, "NOTIFACTOR_OBSERVABILITY__METRICS_PORT": str(dispatchers[1].port)}
    printed = subprocess.run(
        [sys.executable, "-m", "notifactor", "tree", "--metrics"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    assert "consumers [dynamic_supervisor] running" in printed.stdout
    assert "storage-writer [actor] running" in printed.stdout


def test_a_notification_reaches_the_users_sessions_on_every_gateway(cluster: Cluster) -> None:
    gateways = [cluster.start("gateway", "gw-a"), cluster.start("gateway", "gw-b")]
    cluster.start("dispatcher", "dp-a")
    cluster.start("dispatcher", "dp-b")
    user_token = _token("roaming")
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(
                connect(f"ws://127.0.0.1:{g.ws_port}/ws?token={user_token}", open_timeout=10)
            )
            for g in gateways
        ]
        for socket in sockets:
            assert json.loads(socket.recv(timeout=10))["type"] == "welcome"
            socket.send(json.dumps({"type": "subscribe", "channels": ["alerts"]}))
            assert json.loads(socket.recv(timeout=10))["type"] == "subscribed"
        sender = {"Authorization": f"Bearer {_token()}"}
        body = {"tenant_id": TENANT, "user_id": "roaming", "channel": "alerts", "content": "both"}
        # Posted to gateway A; the session on gateway B gets it through B's delivery stream.
        response = httpx.post(
            f"{gateways[0].base_url}/v1/notifications", json=body, headers=sender, timeout=10.0
        )
        assert response.status_code == 202
        notification_id = response.json()["id"]
        for socket in sockets:
            frame = json.loads(socket.recv(timeout=15))
            assert (frame["type"], frame["id"]) == ("notification", notification_id)
        statuses = _statuses(gateways[1], [notification_id], _token())
        assert statuses[notification_id] in ("delivered", "acked")
