"""The lean OTLP encoder writes what the standard encoder writes, and the exporter sends it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from notifactor.observability.otlp_encoding import encode_export_request, varint
from notifactor.observability.otlp_exporter import LeanOTLPSpanExporter

text = st.text(max_size=40)
# Attribute text may be invalid UTF-8 (a lone surrogate): such an attribute is
# left out, by the standard encoder and by this one alike.
attribute_text = st.one_of(text, text.map(lambda t: t + "\udcff"))
scalar = st.one_of(
    attribute_text,
    st.booleans(),
    # Beyond int64 too: left out by both encoders.
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False),
)
attribute_value = st.one_of(
    scalar,
    st.lists(text, max_size=4),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=4),
    st.lists(st.booleans(), max_size=3),
)
attributes = st.dictionaries(
    st.one_of(st.text(min_size=1, max_size=20), st.just("key-\udcff")), attribute_value, max_size=6
)
ids = st.tuples(st.integers(min_value=1, max_value=2**128 - 1), st.integers(1, 2**64 - 1))
trace_state = st.one_of(
    st.none(),
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_\-*/]{0,8}", fullmatch=True),
        st.from_regex(r"[a-zA-Z0-9]{1,8}", fullmatch=True),
        min_size=1,
        max_size=3,
    ).map(lambda entries: TraceState(list(entries.items()))),
)


@st.composite
def span_specs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "name": draw(text),
        "kind": draw(st.sampled_from(list(SpanKind))),
        "attributes": draw(attributes),
        "parent": draw(st.one_of(st.none(), st.tuples(ids, st.booleans(), trace_state))),
        "events": draw(st.lists(st.tuples(text, attributes), max_size=3)),
        "links": draw(st.lists(st.tuples(ids, attributes), max_size=2)),
        "status": draw(
            st.one_of(
                st.none(),
                st.tuples(st.sampled_from([StatusCode.OK, StatusCode.ERROR]), st.none() | text),
            )
        ),
    }


def _record(specs: list[dict[str, Any]], resources: int = 1) -> tuple[ReadableSpan, ...]:
    memory = InMemorySpanExporter()
    providers = [
        TracerProvider(resource=Resource.create({"service.name": f"svc-{index}", "n": index}))
        for index in range(resources)
    ]
    for provider in providers:
        provider.add_span_processor(SimpleSpanProcessor(memory))
    for index, spec in enumerate(specs):
        provider = providers[index % resources]
        tracer = provider.get_tracer("notifactor", "1.2.3" if index % 2 else None)
        context = None
        if spec["parent"] is not None:
            (trace_id, span_id), remote, state = spec["parent"]
            parent = SpanContext(
                trace_id, span_id, is_remote=remote, trace_flags=TraceFlags(1), trace_state=state
            )
            context = set_span_in_context(NonRecordingSpan(parent))
        links = [
            Link(SpanContext(trace_id, span_id, is_remote=True), link_attributes)
            for (trace_id, span_id), link_attributes in spec["links"]
        ]
        span = tracer.start_span(
            spec["name"],
            context=context,
            kind=spec["kind"],
            attributes=spec["attributes"],
            links=links,
        )
        for name, event_attributes in spec["events"]:
            span.add_event(name, event_attributes)
        if spec["status"] is not None:
            code, description = spec["status"]
            span.set_status(Status(code, description if code is StatusCode.ERROR else None))
        span.end()
    for provider in providers:
        provider.shutdown()
    return memory.get_finished_spans()


@settings(max_examples=150, deadline=None)
@given(st.lists(span_specs(), min_size=1, max_size=6), st.integers(min_value=1, max_value=2))
def test_the_lean_bytes_parse_to_the_standard_request(
    specs: list[dict[str, Any]], resources: int
) -> None:
    spans = _record(specs, resources)
    lean = ExportTraceServiceRequest.FromString(encode_export_request(spans))
    assert lean == encode_spans(spans)


def test_the_lean_bytes_are_the_standard_bytes_for_plain_spans() -> None:
    specs = [
        {
            "name": "gateway.ingest",
            "kind": SpanKind.SERVER,
            "attributes": {"notifactor.tenant_id": "acme", "http.status_code": 202},
            "parent": None,
            "events": [],
            "links": [],
            "status": None,
        }
    ] * 3
    spans = _record(specs)
    assert encode_export_request(spans) == encode_spans(spans).SerializePartialToString()


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_matches_protobuf(value: int) -> None:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    encoded = AnyValue(int_value=value - 2**64 if value >= 2**63 else value).SerializeToString()
    assert encoded == b"\x18" + varint(value)


class _Receiver:
    """A loopback OTLP/HTTP endpoint that keeps every request body."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.bodies: list[bytes] = []
        self.content_types: list[str] = []


@pytest.fixture
def receiver() -> Iterator[tuple[str, _Receiver]]:
    received = _Receiver(200)

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
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    finally:
        server.shutdown()
        server.server_close()


def _plain_spans(count: int) -> tuple[ReadableSpan, ...]:
    spec = {
        "name": "dispatch.consume",
        "kind": SpanKind.CONSUMER,
        "attributes": {"notifactor.partition": 3},
        "parent": None,
        "events": [],
        "links": [],
        "status": None,
    }
    return _record([spec] * count)


def test_the_exporter_posts_lean_bytes(receiver: tuple[str, _Receiver]) -> None:
    endpoint, received = receiver
    exporter = LeanOTLPSpanExporter(endpoint=endpoint, timeout=5)
    assert exporter.lean, "the installed OTLP exporter no longer has the shape the lean path uses"
    spans = _plain_spans(4)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert received.content_types == ["application/x-protobuf"]
    assert ExportTraceServiceRequest.FromString(received.bodies[0]) == encode_spans(spans)


def test_a_refused_export_is_a_failure(receiver: tuple[str, _Receiver]) -> None:
    endpoint, received = receiver
    received.status = 400  # not retryable: one request, then failure
    exporter = LeanOTLPSpanExporter(endpoint=endpoint, timeout=5)
    assert exporter.export(_plain_spans(1)) is SpanExportResult.FAILURE
    exporter.shutdown()
    assert len(received.bodies) == 1


def test_with_exporter_self_metrics_on_the_standard_path_is_used(
    receiver: tuple[str, _Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    endpoint, received = receiver
    exporter = LeanOTLPSpanExporter(endpoint=endpoint, timeout=5)
    assert not exporter.lean
    spans = _plain_spans(2)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert ExportTraceServiceRequest.FromString(received.bodies[0]) == encode_spans(spans)


def test_a_name_that_is_not_utf8_is_replaced_not_fatal() -> None:
    spec = {
        "name": "bad \udcff name",
        "kind": SpanKind.INTERNAL,
        "attributes": {"fine": "yes", "bad": "x\udcff"},
        "parent": None,
        "events": [("event \udcff", {})],
        "links": [],
        "status": (StatusCode.ERROR, "why \udcff"),
    }
    (span,) = _record([spec])
    request = ExportTraceServiceRequest.FromString(encode_export_request([span]))
    (encoded,) = request.resource_spans[0].scope_spans[0].spans
    assert encoded.name == "bad ? name"
    assert encoded.events[0].name == "event ?"
    assert encoded.status.message == "why ?"
    assert [kv.key for kv in encoded.attributes] == ["fine"]
