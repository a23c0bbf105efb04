"""Gateway metrics (SPEC §7), on the process-wide Prometheus registry."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest

NOTIFICATIONS_INGESTED = Counter(
    "notifications_ingested",
    "Notifications accepted into a partition stream (duplicates excluded).",
)
NOTIFICATIONS_REJECTED = Counter(
    "notifications_rejected",
    "Notifications refused by the gateway, by reason.",
    ["reason"],
)
HTTP_RESPONSES = Counter(
    "gateway_http_responses",
    "HTTP responses sent by the gateway, by route and status code.",
    ["route", "status"],
)


def render_metrics() -> tuple[bytes, str]:
    """The Prometheus text exposition of every registered metric, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
