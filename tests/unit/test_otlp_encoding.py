"""The lean OTLP encoder writes what the standard encoder writes, and the exporter sends it."""

from __future__ import annotations

from collections.abc import Iterator
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
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
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

from notifactor.observability.lean_tracer import LeanSpan, LeanTracer
from notifactor.observability.otlp_encoding import (
    encode_export_request,
    encode_span,
    span_field,
    varint,
)
from notifactor.observability.otlp_exporter import LeanOTLPSpanExporter
from tests.otlp_receiver import Received, otlp_receiver

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


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    with otlp_receiver() as (base_url, received):
        yield f"{base_url}/v1/traces", received


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


def test_the_exporter_posts_lean_bytes(receiver: tuple[str, Received]) -> None:
    endpoint, received = receiver
    exporter = LeanOTLPSpanExporter(endpoint=endpoint, timeout=5)
    assert exporter.lean, "the installed OTLP exporter no longer has the shape the lean path uses"
    spans = _plain_spans(4)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert received.content_types == ["application/x-protobuf"]
    assert ExportTraceServiceRequest.FromString(received.bodies[0]) == encode_spans(spans)


def test_a_refused_export_is_a_failure(receiver: tuple[str, Received]) -> None:
    endpoint, received = receiver
    received.status = 400  # not retryable: one request, then failure
    exporter = LeanOTLPSpanExporter(endpoint=endpoint, timeout=5)
    assert exporter.export(_plain_spans(1)) is SpanExportResult.FAILURE
    exporter.shutdown()
    assert len(received.bodies) == 1


def test_with_exporter_self_metrics_on_the_standard_path_is_used(
    receiver: tuple[str, Received], monkeypatch: pytest.MonkeyPatch
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


lean_values = st.one_of(
    st.text(max_size=150),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=150),
    st.booleans(),
    st.integers(min_value=-5, max_value=2000),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(text, max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    name=text,
    kind=st.sampled_from(list(SpanKind)),
    start=st.dictionaries(st.text(min_size=1, max_size=12), lean_values, max_size=5),
    later=st.dictionaries(st.text(min_size=1, max_size=12), lean_values, max_size=3),
    parent=st.one_of(st.none(), st.tuples(ids, st.booleans(), trace_state)),
    failed=st.one_of(st.none(), text),
)
def test_the_short_path_for_lean_spans_writes_what_the_standard_encoder_writes(
    *,
    name: str,
    kind: SpanKind,
    start: dict[str, Any],
    later: dict[str, Any],
    parent: tuple[tuple[int, int], bool, TraceState | None] | None,
    failed: str | None,
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "short-path"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = LeanTracer(
        provider.get_tracer("notifactor", "1.0"), InstrumentationScope("notifactor", "1.0")
    )  # type: ignore[arg-type]
    parent_context = None
    if parent is not None:
        (trace_id, span_id), remote, state = parent
        parent_context = SpanContext(
            trace_id, span_id, is_remote=remote, trace_flags=TraceFlags(1), trace_state=state
        )
    span = tracer.start_child(name, parent_context, kind, start)
    for key, value in later.items():
        span.set_attribute(key, value)
    if failed is not None:
        span.set_status(Status(StatusCode.ERROR, failed))
    span.end()
    (ended,) = memory.get_finished_spans()
    assert isinstance(ended, LeanSpan)
    assert span_field(ended) == b"\x12" + varint(len(encode_span(ended))) + encode_span(ended)
    parsed = ExportTraceServiceRequest.FromString(encode_export_request([ended]))
    assert parsed == encode_spans([ended])
