"""`notifactor serve` as a process: access log lines, no secrets in logs, live metrics."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from .test_serve import ServeProcess, serve

__all__ = ["serve"]

pytestmark = pytest.mark.e2e

CONTENT = "quarterly numbers are in: do-not-log-me"


def _json_lines(serve: ServeProcess) -> list[dict[str, object]]:
    lines = []
    for raw in serve.log_lines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def _wait_for_access_lines(serve: ServeProcess, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        access = [line for line in _json_lines(serve) if line.get("event") == "http_request"]
        if len(access) >= count or time.monotonic() > deadline:
            return access
        time.sleep(0.05)


def test_access_log_lines_carry_context_and_never_the_token(serve: ServeProcess) -> None:
    token = serve.token("acme", "user-1")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"tenant_id": "acme", "user_id": "user-1", "channel": "alerts", "content": CONTENT}
    with httpx.Client(base_url=serve.base_url, timeout=10.0) as client:
        accepted = client.post("/v1/notifications", json=body, headers=headers)
        assert accepted.status_code == 202
        ident = accepted.json()["id"]
        assert client.get(f"/v1/notifications/{ident}", headers=headers).status_code == 200
        assert client.get(f"/v1/notifications/{ident}?token={token}").status_code == 401
    access = _wait_for_access_lines(serve, 3)
    post = next(line for line in access if line.get("route") == "notifications")
    assert post["method"] == "POST"
    assert post["status"] == 202
    assert post["tenant_id"] == "acme"
    assert post["notification_id"] == ident
    assert isinstance(post["trace_id"], str)
    assert len(post["trace_id"]) == 32
    assert isinstance(post["duration_ms"], float | int)
    assert post["level"] == "info"
    get = next(line for line in access if line.get("route") == "notification")
    assert get["status"] == 200
    assert get["tenant_id"] == "acme"
    log_text = serve.log_path.read_text(encoding="utf-8")
    assert token not in log_text
    assert CONTENT not in log_text
    assert ident not in str([line.get("route") for line in access])


def test_live_metrics_include_supervision_and_ingest(serve: ServeProcess) -> None:
    token = serve.token("acme", "user-1")
    body = {"tenant_id": "acme", "user_id": "user-1", "channel": "alerts", "content": "hi"}
    with httpx.Client(base_url=serve.base_url, timeout=10.0) as client:
        headers = {"Authorization": f"Bearer {token}"}
        ident = client.post("/v1/notifications", json=body, headers=headers).json()["id"]
        client.get(f"/v1/notifications/{ident}", headers=headers)
        scrape = client.get("/metrics").text
    assert 'actor_restarts_total{child="root"} 0.0' in scrape
    assert 'supervision_node_up{child="root/services"} 1.0' in scrape
    assert 'child="root/services/gateway/http"' in scrape
    for name in (
        "notifications_ingested_total",
        "http_requests_total",
        "redis_ingest_duration_seconds_bucket",
        "storage_operation_duration_seconds_count",
    ):
        assert f"\n{name}" in scrape
