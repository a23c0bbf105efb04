"""Gateway metrics (SPEC §7): the definitions live in :mod:`notifactor.observability.metrics`.

Re-exported here so gateway modules import from their own package; there is
one process-wide registry (prometheus-client's default).
"""

from __future__ import annotations

from notifactor.observability.metrics import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    NOTIFICATIONS_INGESTED,
    NOTIFICATIONS_REJECTED,
    RATE_LIMIT_REJECTIONS,
    render_metrics,
    tenant_label,
)

__all__ = [
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "NOTIFICATIONS_INGESTED",
    "NOTIFICATIONS_REJECTED",
    "RATE_LIMIT_REJECTIONS",
    "render_metrics",
    "tenant_label",
]
