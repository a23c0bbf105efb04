"""Bench-only switches for measuring what metrics and tracing cost.

* :func:`disable_metrics` turns every prometheus-client update in this
  process into a no-op (the product has no such switch: metrics are always
  on). Used by the "off" side of :mod:`bench.observability_bench`.
* :class:`OtlpSink` is a minimal OTLP/HTTP trace receiver on loopback that
  answers every export with 200 and counts what it got, so the "on" side
  exports real spans (``otel_exporter = "otlp"``) without a collector.
* ``python -m bench.observability_hooks ARGS...`` runs ``notifactor ARGS...``
  with metrics disabled.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


def disable_metrics() -> None:
    """Make every metric update a no-op in this process."""
    from prometheus_client import metrics

    def nothing(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    def same(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self

    metrics.MetricWrapperBase.labels = same  # type: ignore[method-assign]
    for cls, names in (
        (metrics.Counter, ("inc",)),
        (metrics.Gauge, ("inc", "dec", "set")),
        (metrics.Histogram, ("observe",)),
        (metrics.Summary, ("observe",)),
    ):
        for name in names:
            setattr(cls, name, nothing)


@attrs.define
class SinkCounts:
    requests: int = 0
    bytes: int = 0


@contextmanager
def otlp_sink() -> Iterator[tuple[str, SinkCounts]]:
    """An OTLP/HTTP endpoint on 127.0.0.1 (its base URL) and what it received."""
    counts = SinkCounts()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(size)
            with lock:
                counts.requests += 1
                counts.bytes += size
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-sink", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counts
    finally:
        server.shutdown()
        server.server_close()


def main() -> int:
    disable_metrics()
    from notifactor.cli import main as notifactor_main

    return notifactor_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
