"""The metrics-only listener of processes without the REST API (``notifactor dispatcher``).

It serves, on ``observability.metrics_host:metrics_port``, through the same
hardened hypercorn server as the REST API (one bad connection never takes the
listener down):

* ``GET /metrics`` — the process registry;
* ``GET /health/live`` — 200 while the process runs;
* ``GET /health`` — Redis, storage and the supervision tree, as the REST
  API's ``/health`` checks them (:mod:`~notifactor.observability.health`):
  200, or 503 with ``Retry-After`` naming what fails. The consumers wait out
  a Redis outage without crashing, so the tree alone would stay healthy
  through one;
* ``GET /v1/admin/tree`` — the live supervision tree, for ``notifactor tree
  --metrics``. This listener checks no tokens, so the loopback exemption of
  the REST API's tree route is its only way in: it answers a loopback client
  that sends no ``Authorization`` header while
  ``observability.tree_loopback_without_token`` is true, and 403 otherwise
  (behind a reverse proxy on the same host every client looks local).

Everything else is a 404 problem document.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import msgspec
import trio

from notifactor.config import Config
from notifactor.gateway.http import answer_lifespan, is_loopback_peer
from notifactor.observability.health import RETRY_AFTER_S, HealthCheck, run_health_checks
from notifactor.observability.metrics import render_metrics
from notifactor.supervisors.statistics import NodeStatistics, to_jsonable

log = logging.getLogger("notifactor.observability.metrics_server")

SupervisionCheck = Callable[[], Awaitable[None]]
TreeSnapshot = Callable[[], NodeStatistics | None]
#: The checks of the process's dependencies right now (``redis``, ``storage``):
#: empty while the services that hold the connections are not running.
DependencyChecks = Callable[[], Mapping[str, HealthCheck]]


def _problem(status: int, title: str, detail: str) -> bytes:
    kind = title.lower().replace(" ", "-")
    return msgspec.json.encode(
        {
            "type": f"urn:notifactor:problem:{kind}",
            "title": title,
            "status": status,
            "detail": detail,
        }
    )


_NOT_FOUND = _problem(
    404, "Not found", "This listener serves /metrics, /health, /health/live and /v1/admin/tree."
)


@attrs.define
class MetricsApp:
    """An ASGI app with ``/metrics``, ``/health/live``, ``/health`` and ``/v1/admin/tree``.

    Attributes:
        supervision_check: raises when the supervision tree is unhealthy.
        dependency_checks: the Redis and storage checks of the moment.
            With neither, ``/health`` answers like ``/health/live``.
        tree: the live tree (None, or returning None: 503).
        tree_loopback_without_token: ``observability.tree_loopback_without_token``;
            false closes the tree on this listener.
    """

    supervision_check: SupervisionCheck | None = None
    dependency_checks: DependencyChecks | None = None
    tree: TreeSnapshot | None = None
    tree_loopback_without_token: bool = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        path, method = scope["path"], scope["method"]
        content_type, status = "application/json", 200
        extra_headers: list[tuple[bytes, bytes]] = []
        if method not in {"GET", "HEAD"}:
            body, content_type, status = _NOT_FOUND, "application/problem+json", 404
        elif path == "/metrics":
            body, content_type = render_metrics()
        elif path == "/health/live":
            body = b'{"status":"ok"}'
        elif path == "/health":
            body, status = await self._health()
            if status != 200:
                extra_headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
        elif path == "/v1/admin/tree":
            body, status = self._tree(scope)
            if status != 200:
                content_type = "application/problem+json"
        else:
            body, content_type, status = _NOT_FOUND, "application/problem+json", 404
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *extra_headers,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _health(self) -> tuple[bytes, int]:
        checks: dict[str, HealthCheck] = dict(
            self.dependency_checks() if self.dependency_checks is not None else {}
        )
        if self.supervision_check is not None:
            checks["supervision"] = self.supervision_check
        report = await run_health_checks(checks)
        return msgspec.json.encode(report.to_jsonable()), 503 if report.failing else 200

    def _tree(self, scope: dict[str, Any]) -> tuple[bytes, int]:
        refused = self._tree_refusal(scope)
        if refused is not None:
            return _problem(403, "Forbidden", refused), 403
        snapshot = None if self.tree is None else self.tree()
        if snapshot is None:
            return _problem(503, "Overloaded", "The supervision tree is not running."), 503
        return msgspec.json.encode(to_jsonable(snapshot)), 200

    def _tree_refusal(self, scope: dict[str, Any]) -> str | None:
        """Why this request may not read the tree (None: it may)."""
        if not self.tree_loopback_without_token:
            return (
                "observability.tree_loopback_without_token is false and this listener "
                "checks no tokens; read the tree through the REST API with an operator token."
            )
        if not is_loopback_peer(scope.get("client")):
            return "The tree is served to loopback clients only."
        if any(name.lower() == b"authorization" for name, _ in scope.get("headers", ())):
            return (
                "This listener checks no tokens; send none from the same host, or read "
                "the tree through the REST API with the token."
            )
        return None


async def run_metrics_server(
    config: Config,
    *,
    supervision_check: SupervisionCheck | None = None,
    dependency_checks: DependencyChecks | None = None,
    tree: TreeSnapshot | None = None,
    task_status: trio.TaskStatus[int | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the metrics listener until cancelled (then drain like the REST API).

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
        app = MetricsApp(
            supervision_check=supervision_check,
            dependency_checks=dependency_checks,
            tree=tree,
            tree_loopback_without_token=settings.tree_loopback_without_token,
        )
        port: int = await nursery.start(run_http_server, app, listener_config)
        log.info(
            "metrics listening on http://%s:%d/metrics",
            settings.metrics_host,
            port,
            extra={"event": "metrics_listening"},
        )
        task_status.started(port)
        await trio.sleep_forever()
