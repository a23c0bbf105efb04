"""WebSocket edge metrics (SPEC §7), on the default prometheus-client registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERY_LATENCY_MS = Histogram(
    "delivery_latency_ms",
    "Milliseconds from acceptance (created_at) to the notification frame written to a socket.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000),
)
NOTIFICATIONS_DELIVERED = Counter(
    "notifications_delivered_total",
    "Notification frames written to WebSocket sessions (live and replayed).",
)
WEBSOCKET_ACTIVE_SESSIONS = Gauge(
    "websocket_active_sessions", "Open WebSocket sessions on this process."
)
WEBSOCKET_CLOSES = Counter(
    "websocket_closes_total", "WebSocket sessions closed by the server, by close code.", ["code"]
)
WEBSOCKET_REFUSED = Counter(
    "websocket_handshakes_refused_total",
    "WebSocket upgrade requests refused before the upgrade, by HTTP status.",
    ["status"],
)
