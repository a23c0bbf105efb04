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
#: Checks whose failure message is safe to show (it names tree nodes, never
#: URLs or credentials, unlike a Redis or storage error might).
DETAILED_CHECKS = frozenset({"supervision"})


async def live(gateway: Gateway, request: Request) -> Response:
    """200 while the process runs and its event loop answers."""
    return json_response(200, {"status": "ok"})


async def _run_check(
    name: str, check: HealthCheck, results: dict[str, str], details: dict[str, str]
) -> None:
    with trio.move_on_after(CHECK_TIMEOUT_S) as scope:
        try:
            await check()
        except Exception as exc:
            log.warning("health check failed", exc_info=True, extra={"reason": name})
            results[name] = "fail"
            if name in DETAILED_CHECKS:
                details[name] = str(exc)
            return
    results[name] = "timeout" if scope.cancelled_caught else "ok"


async def health(gateway: Gateway, request: Request) -> Response:
    """200 when Redis, storage and supervision all answer; else 503 naming the failing ones.

    A failing supervision check also names the node in ``details``
    (``{"supervision": "root/services/gateway/http is restarting"}``).
    """
    checks: dict[str, HealthCheck] = {
        "redis": gateway.ingest.ping,
        "storage": gateway.store.ping,
        "supervision": gateway.supervision_check,
    }
    results: dict[str, str] = {}
    details: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        for name, check in checks.items():
            nursery.start_soon(_run_check, name, check, results, details)
    ordered = {name: results[name] for name in checks}
    failing = [name for name, state in ordered.items() if state != "ok"]
    if failing:
        body: dict[str, object] = {"status": "fail", "checks": ordered, "failing": failing}
        if details:
            body["details"] = details
        return json_response(503, body, [("retry-after", "5")])
    return json_response(200, {"status": "ok", "checks": ordered})


async def metrics(gateway: Gateway, request: Request) -> Response:
    body, content_type = render_metrics()
    return Response(status=200, body=body, content_type=content_type)


async def openapi(gateway: Gateway, request: Request) -> Response:
    return json_response(200, openapi_document(gateway.config.limits))
