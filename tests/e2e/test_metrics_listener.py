"""The metrics listener of dispatcher-only processes, over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from notifactor.config import Config
from notifactor.gateway.server import run_http_server
from notifactor.observability.metrics_server import MetricsApp
from notifactor.supervisors.statistics import NodeStatistics


def tree() -> NodeStatistics:
    return NodeStatistics(id="root", kind="supervisor", state="running")


@asynccontextmanager
async def listening(tmp_path: Path, **app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind the listener's server on a free port, and a client for it."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            run_http_server, MetricsApp(**app), Config(data_dir=tmp_path, http_port=0)
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            yield client
        nursery.cancel_scope.cancel()


async def test_metrics_health_and_tree(tmp_path: Path) -> None:
    async def ok() -> None:
        return None

    async with listening(tmp_path, supervision_check=ok, tree=tree) as client:
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/health/live")).json() == {"status": "ok"}
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "checks": {"supervision": "ok"}}
        shown = await client.get("/v1/admin/tree")
        assert shown.status_code == 200
        assert shown.json()["id"] == "root"
        missing = await client.get("/v1/notifications")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert (await client.post("/metrics")).status_code == 404


async def test_failing_supervision_and_no_tree(tmp_path: Path) -> None:
    async def broken() -> None:
        raise RuntimeError("root/services/dispatcher is restarting")

    async with listening(tmp_path, supervision_check=broken, tree=lambda: None) as client:
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["failing"] == ["supervision"]
        assert "restarting" in health.json()["details"]["supervision"]
        assert (await client.get("/v1/admin/tree")).status_code == 503


@pytest.mark.parametrize(
    ("client", "allowed"),
    [(("127.0.0.1", 5), True), (("::1", 5), True), (("10.0.0.7", 5), False), (None, False)],
)
async def test_the_tree_is_for_loopback_clients_only(
    client: tuple[str, int] | None, allowed: bool
) -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/v1/admin/tree", "client": client}
    await MetricsApp(tree=tree)(scope, receive, send)
    assert sent[0]["status"] == (200 if allowed else 403)
