"""Metric definitions shared by every role, on prometheus-client's default registry.

One registry per process: the default ``prometheus_client.REGISTRY``. Every
module (gateway, dispatcher, edge) defines its metrics at import time on it,
and ``/metrics`` (or the metrics-only listener of :mod:`.metrics_server`)
renders it whole. Nothing passes a registry around, so a metric defined
anywhere is scraped everywhere.

Cardinality rules:

* HTTP metrics carry the route *name* (``notifications``, ``notification``),
  never the raw path, so ids in paths do not create series.
* A tenant label is only ever produced by :func:`tenant_label`: tenants listed
  in ``observability.tenant_label_allowlist`` keep their id, everyone else is
  ``other``.
* Supervision metrics (:mod:`.supervision_metrics`) are bounded by the shape
  of the tree: children of dynamic supervisors are aggregated.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

OTHER_TENANT: Final = "other"

#: Latency buckets for in-process and LAN round trips (seconds): 0.5 ms .. 10 s.
ROUND_TRIP_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Records per storage write / writer flush.
BATCH_SIZE_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)

# --- ingestion (gateway) -------------------------------------------------------

NOTIFICATIONS_INGESTED = Counter(
    "notifications_ingested",
    "Notifications accepted into a partition stream (duplicates excluded).",
)
NOTIFICATIONS_REJECTED = Counter(
    "notifications_rejected",
    "Notifications refused by the gateway, by reason (invalid, rate, quota, overloaded, "
    "unavailable).",
    ["reason"],
)
RATE_LIMIT_REJECTIONS = Counter(
    "rate_limit_rejections",
    "Notifications refused with 429, by reason (rate or quota) and tenant (allowlisted or other).",
    ["reason", "tenant"],
)
REDIS_INGEST_DURATION = Histogram(
    "redis_ingest_duration_seconds",
    "Round trip of the ingest script (rate limit, idempotency, XADD) to Redis, by outcome.",
    ["outcome"],
    buckets=ROUND_TRIP_BUCKETS,
)

INGEST_PIPELINE_CALLS = Histogram(
    "redis_ingest_pipeline_calls",
    "Ingest calls sent together in one Redis pipeline by the gateway's ingest sender.",
    buckets=BATCH_SIZE_BUCKETS,
)
AUDIT_NOTES = Counter(
    "audit_notes",
    "Requests noted for the tenant audit log, by event type (accepted or rejected).",
    ["event_type"],
)
AUDIT_NOTES_DROPPED = Counter(
    "audit_notes_dropped",
    "Audit notes dropped because the audit summarizer's mailbox was full or stopped.",
)
AUDIT_EVENTS_WRITTEN = Counter(
    "audit_events_written",
    "Audit summary events stored (durable).",
)
AUDIT_EVENTS_FAILED = Counter(
    "audit_events_failed",
    "Audit summary events the storage writer could not store (after its retries).",
)

REDIS_SCRIPT_DURATION = Histogram(
    "redis_script_duration_seconds",
    "Round trip of one Lua script call to Redis (ingest, route, presence lookup, "
    "retry promotion, admission, ...), by script and outcome.",
    ["script", "outcome"],
    buckets=ROUND_TRIP_BUCKETS,
)

# --- HTTP ---------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by route name, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from the request's arrival to its response being sent, by route name and method.",
    ["route", "method"],
    buckets=ROUND_TRIP_BUCKETS,
)

# --- storage ------------------------------------------------------------------

STORAGE_DURATION = Histogram(
    "storage_operation_duration_seconds",
    "Round trip of one NotificationStore call, by operation and outcome (ok, transient, error).",
    ["operation", "outcome"],
    buckets=ROUND_TRIP_BUCKETS,
)
STORAGE_WRITE_ITEMS = Histogram(
    "storage_write_batch_items",
    "Records per NotificationStore write call (the writer's batches as they reach the store).",
    ["operation"],
    buckets=BATCH_SIZE_BUCKETS,
)
WRITER_FLUSH_ITEMS = Histogram(
    "storage_writer_flush_items",
    "Records taken from the storage writer's buffer by one flush.",
    buckets=BATCH_SIZE_BUCKETS,
)
WRITER_FLUSH_DURATION = Histogram(
    "storage_writer_flush_duration_seconds",
    "Duration of one storage writer flush, retries included.",
    buckets=ROUND_TRIP_BUCKETS,
)


def tenant_label(allowlist: Collection[str], tenant_id: str) -> str:
    """The value of a ``tenant`` label: the id if allowlisted, else ``other``."""
    return tenant_id if tenant_id in allowlist else OTHER_TENANT


def render_metrics() -> tuple[bytes, str]:
    """The Prometheus text exposition of every registered metric, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
