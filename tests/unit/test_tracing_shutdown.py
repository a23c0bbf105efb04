"""A stopping process waits a bounded time for its last spans, even with the collector down."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from notifactor.config import Config
from notifactor.errors import ConfigError
from notifactor.observability.otlp_batching import EncodingBatchProcessor
from notifactor.observability.otlp_exporter import LeanOTLPSpanExporter
from notifactor.observability.tracing import (
    _otlp_processor,
    build_tracer_provider,
    configure_tracing,
    ingest_span,
    shutdown_tracing,
    use_tracer_provider,
)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    return port


def _queue_spans(count: int) -> None:
    for _ in range(count):
        with ingest_span("gateway.ingest", None):
            pass


def test_shutdown_gives_up_on_an_unreachable_collector_within_its_bound(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    # The exporter gives up on a request after 2 s (retries included): longer
    # than the shutdown waits, short enough for this test to see it end.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    exporter = LeanOTLPSpanExporter()
    provider = build_tracer_provider(Config(), EncodingBatchProcessor(exporter))
    use_tracer_provider(provider)
    try:
        _queue_spans(50)
        started = time.monotonic()
        finished = shutdown_tracing(timeout_s=0.5)
        took = time.monotonic() - started
    finally:
        use_tracer_provider(None)
    assert not finished  # the exporter was still retrying against the refused port
    assert took < 1.5
    # What was left behind still ends once the exporter gives up (and no
    # later test runs beside a thread still retrying).
    left = [t for t in threading.enumerate() if t.name in ("otel-shutdown", "otlp-span-export")]
    assert left
    for thread in left:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in left)


def test_shutdown_exports_what_is_queued_when_the_collector_answers() -> None:

    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(Config(), BatchSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        _queue_spans(30)
        assert shutdown_tracing(timeout_s=5)
    finally:
        use_tracer_provider(None)
    assert len(exporter.get_finished_spans()) == 30


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_an_otlp_protocol_other_than_http_protobuf_is_a_configuration_error(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv(variable, "grpc")
    with pytest.raises(ConfigError) as raised:
        configure_tracing(Config(otel_exporter="otlp"))
    assert str(raised.value) == f"{variable}: only http/protobuf is supported (got 'grpc')"


def test_otlp_export_encodes_spans_as_they_end(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100")
    processor = _otlp_processor()
    try:
        assert isinstance(processor, EncodingBatchProcessor)
        assert processor._limits.max_export_batch_size == 100
    finally:
        processor.shutdown()


def test_a_bad_batching_variable_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "soon")
    with pytest.raises(ConfigError) as raised:
        configure_tracing(Config(otel_exporter="otlp"))
    assert str(raised.value) == "OTEL_BSP_SCHEDULE_DELAY: must be a whole number (got 'soon')"
