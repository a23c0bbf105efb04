"""An OTLP/HTTP receiver on loopback for tests: keeps what it is sent, answers a chosen status.

:func:`request_spans` reads the spans back out of the requests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@attrs.define
class Received:
    """The request bodies and content types received; ``status`` is what is answered."""

    status: int = 200
    bodies: list[bytes] = attrs.Factory(list)
    content_types: list[str] = attrs.Factory(list)


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    """A receiver's base URL (``http://127.0.0.1:PORT``) and what it got, while open."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.bodies.append(self.rfile.read(length))
            received.content_types.append(self.headers["Content-Type"])
            self.send_response(received.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def request_spans(bodies: Iterable[bytes]) -> Iterator[Any]:
    """Every span (protobuf ``Span``) in these ``ExportTraceServiceRequest`` bodies, in order."""
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                yield from scope_spans.spans
