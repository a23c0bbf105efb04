"""The OTLP/HTTP span exporter with notifactor's lean encoder.

:class:`LeanOTLPSpanExporter` is the standard ``OTLPSpanExporter`` (same
``OTEL_EXPORTER_OTLP_*`` variables: endpoint, headers, timeout, TLS,
compression; same HTTP client and retries) whose batches are serialised by
:func:`~notifactor.observability.otlp_encoding.encode_export_request`, about
half the exporter thread's CPU per span. That thread holds the GIL while it
encodes, so the saving goes to the event loop.

The standard exporter has no public hook for its encoder; the lean path
hands the bytes to the exporter's HTTP client. When the installed exporter
does not have that shape, or its own self-metrics are switched on
(``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``), every batch takes the
standard path instead: slower, never broken. ``lean`` says which one is in
use (a unit test pins it for the installed version).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol, cast

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from notifactor.observability.otlp_encoding import encode_export_request

log = logging.getLogger("notifactor.tracing")


class _Outcome(Protocol):
    success: bool


class _HTTPClient(Protocol):
    def export(self, data: bytes) -> _Outcome: ...


def _internal_metrics_on() -> bool:
    value = os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "")
    return value.strip().lower() == "true"


class LeanOTLPSpanExporter(OTLPSpanExporter):
    """``OTLPSpanExporter`` with the lean encoder (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        client = getattr(self, "_client", None)
        self._lean_client: _HTTPClient | None = None
        if callable(getattr(client, "export", None)) and not _internal_metrics_on():
            self._lean_client = cast(_HTTPClient, client)
        self._lean_max_bytes = int(getattr(self, "_max_request_size", 0) or 0)

    @property
    def lean(self) -> bool:
        """Whether batches are encoded by the lean encoder."""
        return self._lean_client is not None

    @property
    def max_request_bytes(self) -> int:
        """The exporter's limit on one request's size (0: none)."""
        return self._lean_max_bytes

    def send_encoded(self, data: bytes) -> bool:
        """Post one serialised request (the lean path only); whether it was accepted."""
        client = self._lean_client
        if client is None or getattr(self, "_shutdown", False):
            return False
        if 0 < self._lean_max_bytes < len(data):
            log.warning(
                "span batch dropped: over the OTLP request size limit",
                extra={"event": "otlp_export", "reason": f"{len(data)} bytes"},
            )
            return False
        return bool(client.export(data).success)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._lean_client is None or getattr(self, "_shutdown", False):
            return super().export(spans)
        try:
            data = encode_export_request(spans)
        except Exception as error:  # a span the encoder cannot read: not the event loop's problem
            log.error(
                "span batch not encoded", extra={"event": "otlp_export", "reason": repr(error)}
            )
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if self.send_encoded(data) else SpanExportResult.FAILURE
