"""``/health/live``, ``/health``, ``/metrics`` and ``/openapi.json``."""

from __future__ import annotations

from notifactor.gateway.context import Gateway
from notifactor.gateway.http import Request, Response, json_response
from notifactor.gateway.metrics import render_metrics
from notifactor.gateway.openapi import openapi_document
from notifactor.observability.health import RETRY_AFTER_S, run_health_checks


async def live(gateway: Gateway, request: Request) -> Response:
    """200 while the process runs and its event loop answers."""
    return json_response(200, {"status": "ok"})


async def health(gateway: Gateway, request: Request) -> Response:
    """200 when Redis, storage and supervision all answer; else 503 naming the failing ones.

    A failing supervision check also names the node in ``details``
    (``{"supervision": "root/services/gateway/http is restarting"}``).
    """
    report = await run_health_checks(
        {
            "redis": gateway.ingest.ping,
            "storage": gateway.store.ping,
            "supervision": gateway.supervision_check,
        }
    )
    if report.failing:
        return json_response(503, report.to_jsonable(), [("retry-after", str(RETRY_AFTER_S))])
    return json_response(200, report.to_jsonable())


async def metrics(gateway: Gateway, request: Request) -> Response:
    body, content_type = render_metrics()
    return Response(status=200, body=body, content_type=content_type)


async def openapi(gateway: Gateway, request: Request) -> Response:
    return json_response(200, openapi_document(gateway.config.limits))
