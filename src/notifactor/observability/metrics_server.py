"""The metrics-only listener of processes without the REST API (``notifactor dispatcher``).

It serves exactly two paths, ``GET /metrics`` (the process registry) and
``GET /health/live``, on ``observability.metrics_host:metrics_port``, through
the same hardened hypercorn server as the REST API (one bad connection never
takes the listener down). Everything else is a 404 problem document.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import msgspec
import trio

from notifactor.config import Config
from notifactor.gateway.http import answer_lifespan
from notifactor.observability.metrics import render_metrics

log = logging.getLogger("notifactor.observability.metrics_server")

_NOT_FOUND = msgspec.json.encode(
    {
        "type": "urn:notifactor:problem:not-found",
        "title": "Not found",
        "status": 404,
        "detail": "This listener serves only /metrics and /health/live.",
    }
)


class MetricsApp:
    """An ASGI app with ``/metrics`` and ``/health/live`` only."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        path, method = scope["path"], scope["method"]
        if method in {"GET", "HEAD"} and path == "/metrics":
            body, content_type = render_metrics()
            status = 200
        elif method in {"GET", "HEAD"} and path == "/health/live":
            body, content_type, status = b'{"status":"ok"}', "application/json", 200
        else:
            body, content_type, status = _NOT_FOUND, "application/problem+json", 404
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def run_metrics_server(
    config: Config, *, task_status: trio.TaskStatus[int | None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve ``/metrics`` and ``/health/live`` until cancelled (then drain like the REST API).

    ``task_status`` receives the bound port once listening. With
    ``observability.metrics_port = 0`` the listener is off: it reports None and
    waits until cancelled, so it can stay a permanent child of a supervisor.
    """
    from notifactor.gateway.server import run_http_server

    settings = config.observability
    if settings.metrics_port == 0:
        task_status.started(None)
        await trio.sleep_forever()
    listener_config = attrs.evolve(
        config, http_host=settings.metrics_host, http_port=settings.metrics_port
    )
    async with trio.open_nursery() as nursery:
        port: int = await nursery.start(run_http_server, MetricsApp(), listener_config)
        log.info(
            "metrics listening on http://%s:%d/metrics",
            settings.metrics_host,
            port,
            extra={"event": "metrics_listening"},
        )
        task_status.started(port)
        await trio.sleep_forever()
