"""Per-request accounting: HTTP metrics and the access log line.

Labels are the route *name* (never the raw path) and the method folded into a
fixed set, so a client cannot create series. The access log line carries the
method, route name, status, duration and whatever the request bound (tenant,
notification id, trace id) — never the query string or a header.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Final

from prometheus_client import Counter, Histogram

from notifactor.gateway.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

access_log = logging.getLogger("notifactor.gateway.access")

KNOWN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Status recorded when the client went away before a response was sent.
CLIENT_CLOSED: Final = 499
#: Routes polled by probes and scrapers: their successful requests log at debug,
#: so a liveness probe every second does not drown the real traffic.
PROBE_ROUTES: Final = frozenset({"live", "metrics"})


def method_label(method: str) -> str:
    """The method itself when standard, else ``OTHER``."""
    return method if method in KNOWN_METHODS else "OTHER"


@functools.cache
def _series(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    """The label children of one (route, method, status): looked up once, not per request.

    Bounded: routes and methods come from fixed sets, statuses from the ones
    the gateway sends.
    """
    return (
        HTTP_REQUESTS.labels(route=route, method=method, status=str(status)),
        HTTP_REQUEST_DURATION.labels(route=route, method=method),
    )


def record_request(route: str, method: str, status: int, started: float) -> None:
    """Count the request, observe its duration and write the access log line.

    Args:
        route: the route name from the routing table (``unknown`` when none matched).
        method: the request method as sent.
        status: the response status (:data:`CLIENT_CLOSED` if none was sent).
        started: ``time.perf_counter()`` at the request's arrival.
    """
    elapsed = time.perf_counter() - started
    label = method_label(method)
    counter, histogram = _series(route, label, status)
    counter.inc()
    histogram.observe(elapsed)
    level = logging.DEBUG if route in PROBE_ROUTES and status < 400 else logging.INFO
    access_log.log(
        level,
        "%s %s %d",
        label,
        route,
        status,
        extra={
            "event": "http_request",
            "method": label,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        },
    )
