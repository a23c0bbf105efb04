"""The lean tracer records what the SDK's tracer records, span for span.

The oracle is the SDK itself: the same calls on an SDK tracer and on a
:class:`LeanTracer` over an identical provider (same ids, same times) must
give the same spans in the standard OTLP encoding.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from notifactor.observability.lean_tracer import MAX_ATTRIBUTES, LeanSpan, LeanTracer, clean_value
from notifactor.observability.otlp_encoding import encode_export_request

SCOPE = ("notifactor", "1.2.3")


class CountingIds(IdGenerator):
    """Ids 1, 2, 3, ... so two tracers fed the same calls get the same ids."""

    def __init__(self) -> None:
        self.last = 0

    def generate_span_id(self) -> int:
        self.last += 1
        return self.last

    def generate_trace_id(self) -> int:
        self.last += 1
        return self.last << 64


def _provider(sampler: Sampler = ALWAYS_ON) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "lean-test"}),
        id_generator=CountingIds(),
        sampler=sampler,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _tracers(sampler: Sampler = ALWAYS_ON) -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    sdk_provider, sdk_spans = _provider(sampler)
    yield sdk_provider.get_tracer(*SCOPE), sdk_spans
    lean_provider, lean_spans = _provider(sampler)
    sdk_tracer = lean_provider.get_tracer(*SCOPE)
    assert not isinstance(sdk_tracer, LeanTracer)
    yield LeanTracer(sdk_tracer, InstrumentationScope(*SCOPE)), lean_spans  # type: ignore[arg-type]


text = st.text(max_size=20)
# The API's attribute types. (Outside them the SDK keeps some values, such as
# None or a list of mixed types, and the lean tracer drops them, as the API
# asks: see test_attribute_values_follow_the_api_rules.)
values = st.one_of(
    text,
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(text, max_size=3),
    st.lists(st.integers(min_value=0, max_value=9), max_size=3),
    st.lists(st.booleans(), max_size=3),
)
attribute_maps = st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=5)
status_calls = st.lists(
    st.one_of(
        st.sampled_from([StatusCode.OK, StatusCode.ERROR, StatusCode.UNSET]).map(lambda c: (c,)),
        st.tuples(st.sampled_from([StatusCode.ERROR, StatusCode.OK]), text),
    ),
    max_size=3,
)
parents = st.one_of(
    st.none(),
    st.tuples(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.sampled_from([0, 1, 3])),
)


def _run_steps(
    tracer: trace.Tracer,
    *,
    parent: tuple[int, int, int] | None,
    start: dict[str, object],
    later: dict[str, object],
    statuses: list[tuple[StatusCode] | tuple[StatusCode, str]],
    failure: ValueError | None,
) -> None:
    context = None
    if parent is not None:
        trace_id, span_id, flags = parent
        remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
        context = trace.set_span_in_context(NonRecordingSpan(remote))
    span = tracer.start_span(
        "step",
        context=context,
        kind=SpanKind.CONSUMER,
        attributes=start,  # type: ignore[arg-type]
        start_time=1_000,
    )
    for key, value in later.items():
        span.set_attribute(key, value)  # type: ignore[arg-type]
    for call in statuses:
        span.set_status(*call)
    if failure is not None:
        span.record_exception(failure, timestamp=1_500)
        span.add_event("retry", {"attempt": 2, "kinds": ["a", "b"]}, timestamp=1_600)
    span.end(end_time=2_000)
    span.set_attribute("after.end", 1)  # ignored by both
    span.end(end_time=3_000)  # a second end is ignored by both


# The standard ParentBased samplers (decided from the parent's flag without a
# sampler call), and others the lean tracer must ask.
SAMPLERS: list[Sampler] = [
    ParentBased(ALWAYS_ON),
    ParentBased(TraceIdRatioBased(0.5)),
    ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON),
    ParentBased(ALWAYS_OFF, local_parent_sampled=ALWAYS_OFF, remote_parent_sampled=ALWAYS_OFF),
    ALWAYS_ON,
    TraceIdRatioBased(0.5),
]


@settings(max_examples=300, deadline=None)
@given(
    parent=parents,
    start=attribute_maps,
    later=attribute_maps,
    statuses=status_calls,
    fails=st.booleans(),
    sampler=st.sampled_from(SAMPLERS),
)
def test_a_lean_span_encodes_exactly_as_the_sdk_span_of_the_same_calls(
    *,
    parent: tuple[int, int, int] | None,
    start: dict[str, object],
    later: dict[str, object],
    statuses: list[tuple[StatusCode] | tuple[StatusCode, str]],
    fails: bool,
    sampler: Sampler,
) -> None:
    failure = ValueError("broken") if fails else None
    encoded = []
    for tracer, exporter in _tracers(sampler):
        _run_steps(
            tracer, parent=parent, start=start, later=later, statuses=statuses, failure=failure
        )
        spans = exporter.get_finished_spans()
        encoded.append(encode_spans(spans))
        # notifactor's own encoder reads lean spans as it reads SDK spans.
        assert encode_export_request(spans) == encode_spans(spans).SerializeToString()
    assert encoded[0] == encoded[1]
    if sampler is SAMPLERS[0]:
        sampled = parent is None or parent[2] & 1
        assert len(encoded[0].resource_spans) == (1 if sampled else 0)


def test_a_span_the_sampler_leaves_out_is_not_recording_and_carries_not_sampled() -> None:
    provider, exporter = _provider(ALWAYS_OFF)
    tracer = LeanTracer(provider.get_tracer(*SCOPE), InstrumentationScope(*SCOPE))  # type: ignore[arg-type]
    span = tracer.start_span("left-out")
    assert not span.is_recording()
    assert not isinstance(span, LeanSpan)
    assert not span.get_span_context().trace_flags.sampled
    assert span.get_span_context().is_valid
    span.end()
    assert exporter.get_finished_spans() == ()


def test_ok_is_final_and_unset_never_replaces_a_status() -> None:
    provider, exporter = _provider()
    tracer = LeanTracer(provider.get_tracer(*SCOPE), InstrumentationScope(*SCOPE))  # type: ignore[arg-type]
    span = tracer.start_span("s")
    span.set_status(Status(StatusCode.ERROR, "first"))
    span.set_status(StatusCode.UNSET)
    assert span.status.status_code is StatusCode.ERROR  # type: ignore[attr-defined]
    span.set_status(StatusCode.OK)
    span.set_status(StatusCode.ERROR, "too late")
    span.end()
    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.OK


def test_attributes_are_capped_per_span() -> None:
    provider, exporter = _provider()
    tracer = LeanTracer(provider.get_tracer(*SCOPE), InstrumentationScope(*SCOPE))  # type: ignore[arg-type]
    span = tracer.start_span("s", attributes={f"a{i}": i for i in range(MAX_ATTRIBUTES + 5)})
    span.set_attribute("one.more", 1)
    span.set_attribute("a0", "replaced")  # an existing key can still change
    span.end()
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes is not None
    assert len(finished.attributes) == MAX_ATTRIBUTES
    assert finished.attributes["a0"] == "replaced"
    assert "one.more" not in finished.attributes


@pytest.mark.parametrize(
    ("value", "cleaned"),
    [
        ("x", "x"),
        (True, True),
        (3, 3),
        (2.5, 2.5),
        (["a", "b"], ("a", "b")),
        ([1, 2.5], (1.0, 2.5)),
        ([], ()),
        ([True, 1], None),
        (b"raw", None),
        (None, None),
        ({"k": "v"}, None),
        ([None], None),
    ],
)
def test_attribute_values_follow_the_api_rules(value: object, cleaned: object) -> None:
    assert clean_value(value) == cleaned


class RandomFlagIds(CountingIds):
    """Counting ids that declare themselves random (the W3C "random trace id" flag)."""

    def is_trace_id_random(self) -> bool:
        return True


@settings(max_examples=300, deadline=None)
@given(
    parent=parents,
    remote=st.booleans(),
    start=attribute_maps,
    later=attribute_maps,
    sampler=st.sampled_from(SAMPLERS),
    random_ids=st.booleans(),
    kind=st.sampled_from(list(SpanKind)),
)
def test_start_child_records_what_start_span_records_for_that_parent(
    *,
    parent: tuple[int, int, int] | None,
    remote: bool,
    start: dict[str, object],
    later: dict[str, object],
    sampler: Sampler,
    random_ids: bool,
    kind: SpanKind,
) -> None:
    """The SDK's tracer, given the parent in a context, is the oracle of ``start_child``."""
    results = []
    for lean in (False, True):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(
            resource=Resource.create({"service.name": "lean-test"}),
            id_generator=RandomFlagIds() if random_ids else CountingIds(),
            sampler=sampler,
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        sdk_tracer = provider.get_tracer(*SCOPE)
        span_context = None
        if parent is not None:
            trace_id, span_id, flags = parent
            span_context = SpanContext(
                trace_id, span_id, is_remote=remote, trace_flags=TraceFlags(flags)
            )
        if lean:
            tracer = LeanTracer(sdk_tracer, InstrumentationScope(*SCOPE))  # type: ignore[arg-type]
            span = tracer.start_child("step", span_context, kind, start, start_time=1_000)  # type: ignore[arg-type]
        else:
            context = (
                Context()
                if span_context is None
                else trace.set_span_in_context(NonRecordingSpan(span_context))
            )
            span = sdk_tracer.start_span(
                "step",
                context=context,
                kind=kind,
                attributes=start,
                start_time=1_000,  # type: ignore[arg-type]
            )
        for key, value in later.items():
            span.set_attribute(key, value)  # type: ignore[arg-type]
        span.end(end_time=2_000)
        results.append(
            (
                span.get_span_context(),
                span.is_recording(),
                encode_spans(exporter.get_finished_spans()),
            )
        )
    assert results[0] == results[1]


class _Starts(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[tuple[str, Context | None]] = []
        self.ended: list[str] = []

    def on_start(self, span: trace.Span, parent_context: Context | None = None) -> None:
        self.started.append((span.name, parent_context))  # type: ignore[attr-defined]

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span.name)


def test_processors_added_later_see_later_spans_and_on_start_when_they_use_it() -> None:
    provider, exporter = _provider()
    tracer = LeanTracer(provider.get_tracer(*SCOPE), InstrumentationScope(*SCOPE))  # type: ignore[arg-type]
    tracer.start_child("before", None).end()
    starts = _Starts()
    provider.add_span_processor(starts)
    parent = SpanContext(3 << 64, 4, is_remote=True, trace_flags=TraceFlags(1))
    tracer.start_child("after", parent).end()
    assert [span.name for span in exporter.get_finished_spans()] == ["before", "after"]
    assert starts.ended == ["after"]
    ((name, context),) = starts.started
    assert name == "after"
    assert trace.get_current_span(context).get_span_context() == parent


def test_a_new_trace_from_start_child_never_takes_the_current_span_as_parent() -> None:
    # A ratio of 1 keeps every root, where the current span (not sampled) would drop it.
    provider, exporter = _provider(ParentBased(TraceIdRatioBased(1.0)))
    tracer = LeanTracer(provider.get_tracer(*SCOPE), InstrumentationScope(*SCOPE))  # type: ignore[arg-type]
    current = SpanContext(9 << 64, 9, is_remote=True, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(current)):
        span = tracer.start_child("new-trace", None)
    assert span.is_recording()
    assert span.get_span_context().trace_id != current.trace_id
    span.end()
    (ended,) = exporter.get_finished_spans()
    assert ended.parent is None
