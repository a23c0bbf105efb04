"""`notifactor serve` as a process: access log lines, no secrets in logs, live metrics."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.sync.client import connect

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


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    """Sum of every sample called ``name`` (all label sets)."""
    return sum(v for (n, _labels), v in samples.items() if n == name)


def test_spec_metrics_move_under_traffic(serve: ServeProcess) -> None:
    """Every SPEC §7 metric is in a live scrape, and the delivery ones move with a delivery."""
    token = serve.token("acme", "metric-user")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"ws://127.0.0.1:{serve.ws_port}/ws?token={token}"
    with httpx.Client(base_url=serve.base_url, timeout=10.0) as client:
        before = _samples(client.get("/metrics").text)
        with connect(url, open_timeout=10) as socket:
            assert json.loads(socket.recv(timeout=10))["type"] == "welcome"
            socket.send(json.dumps({"type": "subscribe", "channels": ["alerts"]}))
            assert json.loads(socket.recv(timeout=10))["type"] == "subscribed"
            body = {"tenant_id": "acme", "user_id": "metric-user", "channel": "alerts"}
            for i in range(3):
                response = client.post(
                    "/v1/notifications", json={**body, "content": f"n{i}"}, headers=headers
                )
                assert response.status_code == 202
            for _ in range(3):
                assert json.loads(socket.recv(timeout=10))["type"] == "notification"
            during = _samples(client.get("/metrics").text)
        deadline = time.monotonic() + 10
        while True:
            after = _samples(client.get("/metrics").text)
            if _value(after, "websocket_active_sessions") == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert (
        _value(during, "notifications_ingested_total")
        - _value(before, "notifications_ingested_total")
        == 3
    )
    assert (
        _value(during, "notifications_delivered_total")
        - _value(before, "notifications_delivered_total")
        == 3
    )
    assert (
        _value(during, "delivery_latency_ms_count") - _value(before, "delivery_latency_ms_count")
        == 3
    )
    assert _value(during, "delivery_latency_ms_sum") > _value(before, "delivery_latency_ms_sum")
    assert (
        _value(during, "websocket_active_sessions")
        == _value(before, "websocket_active_sessions") + 1
    )
    assert _value(after, "websocket_active_sessions") == _value(before, "websocket_active_sessions")
    names = {name for name, _labels in after}
    for name in (
        "retry_attempts_total",
        "dlq_events_total",
        "actor_restarts_total",
        "mailbox_depth",
    ):
        assert name in names or any(n.startswith(name) for n in names), name
    # One lag gauge per partition, once the consumers have done their first maintenance.
    lag_partitions = {
        dict(labels).get("partition") for n, labels in after if n == "stream_consumer_lag"
    }
    assert lag_partitions, "stream_consumer_lag has no partition samples"
    # Redis round trips of the dispatcher and the edge are timed per script.
    for script in ("route", "presence_lookup", "presence_register", "ws_admit"):
        key = ("redis_script_duration_seconds_count", (("outcome", "ok"), ("script", script)))
        assert during.get(key, 0) > before.get(key, 0), script
    # The storage writer's mailbox is in the scrape with its depth.
    assert any(
        n == "mailbox_depth" and "storage-writer" in dict(labels).get("child", "")
        for n, labels in after
    )


def test_dashboard_and_alerts_query_only_metrics_of_a_live_scrape(serve: ServeProcess) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.unit.test_observability_dashboards import exposed_names, used_names

    with httpx.Client(base_url=serve.base_url, timeout=10.0) as client:
        scrape = client.get("/metrics").text
    live = exposed_names(text_string_to_metric_families(scrape))
    # ``up`` is Prometheus' own, per scrape target.
    missing = [name for name in used_names() if name not in live and name != "up"]
    assert missing == []
