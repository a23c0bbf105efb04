"""Trace context: the ingest span, the traceparent carried in envelopes, and log fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind, StatusCode

from notifactor.config import Config
from notifactor.domain.envelope import trace_id_of
from notifactor.observability.log_context import bind_log_fields, log_context
from notifactor.observability.logging import configure_logging
from notifactor.observability.tracing import (
    build_tracer_provider,
    child_item_spans,
    configure_tracing,
    consume_span,
    current_trace_id,
    end_item_span,
    ingest_span,
    span_context_of,
    start_item_spans,
    traceparent_of,
    use_tracer_provider,
)

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(Config(instance_id="test-1"), SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        use_tracer_provider(None)
        provider.shutdown()


def test_the_carried_traceparent_is_the_ingest_span(spans: InMemorySpanExporter) -> None:
    with ingest_span("gateway.ingest", None) as span:
        carried = traceparent_of(span)
        context = span.get_span_context()
    (finished,) = spans.get_finished_spans()
    assert finished.name == "gateway.ingest"
    assert finished.kind == SpanKind.SERVER
    assert carried.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert finished.resource.attributes["service.name"] == "notifactor"
    assert finished.resource.attributes["service.instance.id"] == "test-1"


def test_a_client_traceparent_becomes_the_parent(spans: InMemorySpanExporter) -> None:
    with ingest_span("gateway.ingest", CLIENT_TRACEPARENT) as span:
        carried = traceparent_of(span, CLIENT_TRACEPARENT)
    (finished,) = spans.get_finished_spans()
    assert trace_id_of(carried) == CLIENT_TRACE
    assert finished.parent is not None
    assert format(finished.parent.span_id, "016x") == CLIENT_SPAN


def test_consume_span_continues_the_envelope_trace(spans: InMemorySpanExporter) -> None:
    with ingest_span("gateway.ingest", None) as span:
        carried = traceparent_of(span)
    with consume_span("dispatch.consume", carried, {"notifactor.partition": 3}):
        assert current_trace_id() == trace_id_of(carried)
    ingest, consume = spans.get_finished_spans()
    assert consume.kind == SpanKind.CONSUMER
    assert consume.parent is not None
    assert consume.parent.span_id == ingest.context.span_id


def test_a_garbage_traceparent_starts_a_new_trace(spans: InMemorySpanExporter) -> None:
    with consume_span("dispatch.consume", "not-a-traceparent"):
        pass
    (finished,) = spans.get_finished_spans()
    assert finished.parent is None


def test_without_tracing_envelopes_still_carry_a_valid_trace() -> None:
    assert configure_tracing(Config(otel_exporter="none")) is None
    with ingest_span("gateway.ingest", CLIENT_TRACEPARENT) as span:
        carried = traceparent_of(span, CLIENT_TRACEPARENT)
    assert trace_id_of(carried) == CLIENT_TRACE
    assert carried.split("-")[2] != CLIENT_SPAN
    with ingest_span("gateway.ingest", None) as span:
        fresh = traceparent_of(span, None)
    assert len(trace_id_of(fresh)) == 32


def test_log_lines_carry_bound_fields_and_the_trace_id(spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    configure_logging(log_format="json", level="info", instance_id="i-1", stream=stream)
    log = logging.getLogger("notifactor.test")
    try:
        with log_context(), ingest_span("gateway.ingest", None):
            bind_log_fields(tenant_id="acme", notification_id="n-1", token="secret-token")
            log.info("accepted")
            trace_id = current_trace_id()
        log.info("outside")
    finally:
        logging.getLogger().handlers.clear()
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["tenant_id"] == "acme"
    assert inside["notification_id"] == "n-1"
    assert inside["trace_id"] == trace_id
    assert "secret-token" not in stream.getvalue()
    assert "tenant_id" not in outside


def test_a_sampled_out_trace_stays_out_downstream() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        with ingest_span("gateway.ingest", None) as span:
            carried = traceparent_of(span)
        assert int(carried.rsplit("-", 1)[1], 16) & 1 == 0  # "not sampled" is carried
        use_tracer_provider(sampling_provider := TracerProvider(sampler=ParentBased(ALWAYS_ON)))
        sampling_provider.add_span_processor(SimpleSpanProcessor(exporter))
        with consume_span("dispatch.consume", carried):
            pass
        (span,) = start_item_spans("dispatch.consume", [carried], [None])
        end_item_span(span)
        sampling_provider.shutdown()
    finally:
        use_tracer_provider(None)
        provider.shutdown()
    assert exporter.get_finished_spans() == ()


def test_item_spans_cost_nothing_with_tracing_off() -> None:
    use_tracer_provider(None)
    spans = start_item_spans("dispatch.consume", [CLIENT_TRACEPARENT, None], [None, None])
    assert [s.is_recording() for s in spans] == [False, False]
    with child_item_spans("dispatch.persist", spans) as children:
        assert not any(c.is_recording() for c in children)


def test_the_standard_sampler_variables_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(Config(), SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        with ingest_span("gateway.ingest", None) as span:
            assert not span.is_recording()
        with ingest_span("gateway.ingest", CLIENT_TRACEPARENT):  # the client sampled it
            pass
    finally:
        use_tracer_provider(None)
        provider.shutdown()
    (kept,) = exporter.get_finished_spans()
    assert format(kept.context.trace_id, "032x") == CLIENT_TRACE


@given(
    trace_id=st.integers(1, 2**128 - 1),
    span_id=st.integers(1, 2**64 - 1),
    flags=st.integers(0, 255),
)
def test_traceparent_parse_round_trips(trace_id: int, span_id: int, flags: int) -> None:
    text = f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    context = span_context_of(text)
    assert context is not None
    assert (context.trace_id, context.span_id, int(context.trace_flags)) == (
        trace_id,
        span_id,
        flags,
    )
    assert context.is_remote


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "garbage",
        f"01-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
        f"00-{'0' * 32}-{CLIENT_SPAN}-01",
        f"00-{CLIENT_TRACE}-{'0' * 16}-01",
        f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-zz",
        f"00-{CLIENT_TRACE[:-1]}x-{CLIENT_SPAN}-01",
        f"00-{CLIENT_TRACE}0-{CLIENT_SPAN[1:]}-01",
        f"00-{CLIENT_TRACE[:-2]}_c-{CLIENT_SPAN}-01",
    ],
)
def test_bad_traceparents_parse_to_nothing(text: str | None) -> None:
    assert span_context_of(text) is None


def test_with_tracing_off_the_carried_trace_id_reaches_log_lines() -> None:
    use_tracer_provider(None)
    with consume_span("edge.fan_out", CLIENT_TRACEPARENT) as span:
        assert not span.is_recording()
        assert current_trace_id() == CLIENT_TRACE
    assert current_trace_id() is None


def test_library_chatter_stays_below_warning() -> None:
    stream = io.StringIO()
    configure_logging(log_format="json", level="info", instance_id="i-1", stream=stream)
    try:
        logging.getLogger("coredis").info("Retry attempt 1 due to error: No matching script.")
        logging.getLogger("cassandra.pool").info("new connection")
        logging.getLogger("coredis").warning("kept")
    finally:
        logging.getLogger().handlers.clear()
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "kept"


def test_a_failing_step_marks_its_span_and_the_error_propagates(
    spans: InMemorySpanExporter,
) -> None:
    seen: list[str | None] = []

    def step() -> None:
        with consume_span("dispatch.persist", CLIENT_TRACEPARENT):
            seen.append(current_trace_id())  # the span is current inside the block
            raise KeyError("row")

    with pytest.raises(KeyError):
        step()
    assert seen == [CLIENT_TRACE]
    assert current_trace_id() is None  # and no longer once the block is left
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "KeyError: 'row'"
    assert [event.name for event in span.events] == ["exception"]
    assert format(span.context.trace_id, "032x") == CLIENT_TRACE
