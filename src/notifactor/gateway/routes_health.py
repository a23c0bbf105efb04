"""``/health/live``, ``/health``, ``/metrics`` and ``/openapi.json``."""

from __future__ import annotations

import logging

import trio

from notifactor.gateway.context import Gateway, HealthCheck
from notifactor.gateway.http import Request, Response, json_response
from notifactor.gateway.metrics import render_metrics
from notifactor.gateway.openapi import openapi_document

log = logging.getLogger("notifactor.gateway")

CHECK_TIMEOUT_S = 2.0


async def live(gateway: Gateway, request: Request) -> Response:
    """200 while the process runs and its event loop answers."""
    return json_response(200, {"status": "ok"})


async def _run_check(name: str, check: HealthCheck, results: dict[str, str]) -> None:
    with trio.move_on_after(CHECK_TIMEOUT_S) as scope:
        try:
            await check()
        except Exception:
            log.warning("health check failed", exc_info=True, extra={"reason": name})
            results[name] = "fail"
            return
    results[name] = "timeout" if scope.cancelled_caught else "ok"


async def health(gateway: Gateway, request: Request) -> Response:
    """200 when Redis, storage and supervision all answer; else 503 naming the failing ones."""
    checks: dict[str, HealthCheck] = {
        "redis": gateway.ingest.ping,
        "storage": gateway.store.ping,
        "supervision": gateway.supervision_check,
    }
    results: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        for name, check in checks.items():
            nursery.start_soon(_run_check, name, check, results)
    ordered = {name: results[name] for name in checks}
    failing = [name for name, state in ordered.items() if state != "ok"]
    if failing:
        return json_response(
            503, {"status": "fail", "checks": ordered, "failing": failing}, [("retry-after", "5")]
        )
    return json_response(200, {"status": "ok", "checks": ordered})


async def metrics(gateway: Gateway, request: Request) -> Response:
    body, content_type = render_metrics()
    return Response(status=200, body=body, content_type=content_type)


async def openapi(gateway: Gateway, request: Request) -> Response:
    return json_response(200, openapi_document())
