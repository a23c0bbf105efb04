"""The metrics listener's ``/v1/admin/tree`` follows ``observability.tree_loopback_without_token``.

That listener checks no tokens: the loopback exemption is its only way in.
Behind a reverse proxy on the same host every client looks local, so with
the exemption turned off it must not answer the tree to anyone.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
import trio

from notifactor.config import Config
from notifactor.config.model import ObservabilityConfig
from notifactor.observability.metrics_server import run_metrics_server
from notifactor.supervisors.statistics import NodeStatistics


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tree() -> NodeStatistics:
    return NodeStatistics(id="root", kind="supervisor", state="running")


@pytest.mark.parametrize("exempt", [True, False])
async def test_the_tree_follows_the_loopback_exemption(tmp_path: Path, exempt: bool) -> None:
    config = Config(
        data_dir=tmp_path,
        observability=ObservabilityConfig(
            metrics_port=_free_port(), tree_loopback_without_token=exempt
        ),
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: run_metrics_server(config, tree=_tree, task_status=task_status)
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            answer = await client.get("/v1/admin/tree")
            with_token = await client.get(
                "/v1/admin/tree", headers={"Authorization": "Bearer whatever"}
            )
            scrape = await client.get("/metrics")
        nursery.cancel_scope.cancel()
    assert scrape.status_code == 200  # the rest of the listener is unaffected
    if exempt:
        assert answer.status_code == 200
        assert answer.json()["id"] == "root"
    else:
        assert answer.status_code == 403
        assert answer.headers["content-type"] == "application/problem+json"
        assert "tree_loopback_without_token" in answer.json()["detail"]
    # A token is never checked here: it neither opens the tree nor is ignored silently.
    assert with_token.status_code == 403
    assert with_token.headers["content-type"] == "application/problem+json"
