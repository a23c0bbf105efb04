"""One trace per notification, from the REST request through the dispatcher to the socket.

`notifactor serve` runs with the console span exporter (the spans it prints
are read back after it stops), and with the OTLP exporter posting to a
receiver on loopback (the protobuf requests it got are decoded).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.e2e.test_serve import free_port
from tests.otlp_receiver import otlp_receiver, request_spans

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _console_spans(text: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed, as name, ids (hex) and attributes."""
    decoder = json.JSONDecoder()
    spans, index = [], 0
    while True:
        start = text.find("{", index)
        if start < 0:
            return spans
        value, index = decoder.raw_decode(text, start)
        if isinstance(value, dict) and "context" in value:
            spans.append(
                {
                    "name": value["name"],
                    "trace_id": value["context"]["trace_id"].removeprefix("0x"),
                    "span_id": value["context"]["span_id"].removeprefix("0x"),
                    "parent_id": (value["parent_id"] or "").removeprefix("0x"),
                    "attributes": value["attributes"],
                }
            )


def _otlp_spans(bodies: list[bytes]) -> list[dict[str, Any]]:
    """The spans in the OTLP requests a receiver got, in the same shape."""
    spans = []
    for span in request_spans(bodies):
        attributes: dict[str, Any] = {}
        for pair in span.attributes:
            kind = pair.value.WhichOneof("value")
            attributes[pair.key] = getattr(pair.value, kind) if kind else None
        spans.append(
            {
                "name": span.name,
                "trace_id": span.trace_id.hex(),
                "span_id": span.span_id.hex(),
                "parent_id": span.parent_span_id.hex(),
                "attributes": attributes,
            }
        )
    return spans


def _wait_live(base_url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited early"
        try:
            if httpx.get(f"{base_url}/health/live", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("serve did not come up")


@pytest.mark.parametrize("exporter", ["console", "otlp"])
def test_one_trace_from_post_to_socket(exporter: str, tmp_path: Path) -> None:
    with otlp_receiver() as (endpoint, received):
        _one_trace_from_post_to_socket(exporter, tmp_path, endpoint, received.bodies)


def _one_trace_from_post_to_socket(
    exporter: str, tmp_path: Path, endpoint: str, received: list[bytes]
) -> None:
    http_port, ws_port = free_port(), free_port()
    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFACTOR_", "OTEL_"))}
    env.update(
        NOTIFACTOR_DATA_DIR=str(data_dir),
        NOTIFACTOR_HTTP_PORT=str(http_port),
        NOTIFACTOR_WS_PORT=str(ws_port),
        NOTIFACTOR_OTEL_EXPORTER=exporter,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "notifactor", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    base_url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_live(base_url, process)
        token = subprocess.run(
            [sys.executable, "-m", "notifactor", "token", "--tenant", "acme", "--sub", "traced"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        with connect(f"ws://127.0.0.1:{ws_port}/ws?token={token}", open_timeout=10) as socket:
            assert json.loads(socket.recv(timeout=10))["type"] == "welcome"
            socket.send(json.dumps({"type": "subscribe", "channels": ["alerts"]}))
            assert json.loads(socket.recv(timeout=10))["type"] == "subscribed"
            response = httpx.post(
                f"{base_url}/v1/notifications",
                json={
                    "tenant_id": "acme",
                    "user_id": "traced",
                    "channel": "alerts",
                    "content": "t",
                },
                headers={"Authorization": f"Bearer {token}", "traceparent": CLIENT_TRACEPARENT},
                timeout=10.0,
            )
            assert response.status_code == 202
            notification_id = response.json()["id"]
            frame = json.loads(socket.recv(timeout=10))
            assert frame["id"] == notification_id
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0

    spans = _console_spans(output) if exporter == "console" else _otlp_spans(received)
    traced = [span for span in spans if span["trace_id"] == TRACE_ID]
    assert {
        "gateway.ingest",
        "dispatch.consume",
        "dispatch.persist",
        "dispatch.route",
        "edge.fan_out",
        "edge.socket_write",
    } <= {span["name"] for span in traced}, sorted(span["name"] for span in traced)
    by_name = {span["name"]: span for span in traced}
    # The ingest span is the client's child; the socket write is a child of
    # the fan-out that queued its frame.
    assert by_name["gateway.ingest"]["parent_id"] == CLIENT_TRACEPARENT.split("-")[2]
    assert by_name["edge.socket_write"]["parent_id"] == by_name["edge.fan_out"]["span_id"]
    assert by_name["edge.fan_out"]["attributes"]["notifactor.sessions"] == 1
    consume = [span for span in spans if span["name"] == "dispatch.consume"]
    assert any(
        span["attributes"].get("notifactor.notification_id") == notification_id for span in consume
    )
