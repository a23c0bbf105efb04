"""The encoding batch processor: spans encoded as they end, sent in bounded batches."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from notifactor.errors import ConfigError
from notifactor.observability.lean_tracer import LeanTracer
from notifactor.observability.otlp_batching import (
    BatchLimits,
    EncodingBatchProcessor,
    Queued,
    take_batch,
)
from tests.otlp_receiver import request_spans

RESOURCE = Resource.create({"service.name": "batching-test"})
WAIT_S = 5.0


class Sender:
    """Records every request; can be told to refuse, fail, or hold the next one."""

    def __init__(self, max_request_bytes: int = 0) -> None:
        self.max_request_bytes = max_request_bytes
        self.requests: list[bytes] = []
        self.accept = True
        self.error: Exception | None = None
        self.hold = threading.Event()
        self.hold.set()
        self.holding = threading.Event()
        self.stopped = False

    def send_encoded(self, data: bytes) -> bool:
        self.holding.set()
        self.hold.wait(WAIT_S)
        if self.error is not None:
            raise self.error
        self.requests.append(data)
        return self.accept

    def shutdown(self) -> None:
        self.stopped = True

    def spans(self) -> list[bytes]:
        """The span ids sent, in order, over every request."""
        return [span.span_id for span in request_spans(self.requests)]


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "not within the wait"
        time.sleep(0.005)


Make = Callable[..., tuple[EncodingBatchProcessor, Sender, LeanTracer]]


@pytest.fixture
def make() -> Iterator[Make]:
    made: list[TracerProvider] = []

    def build(
        limits: BatchLimits | None = None, sender: Sender | None = None
    ) -> tuple[EncodingBatchProcessor, Sender, LeanTracer]:
        sender = sender or Sender()
        processor = EncodingBatchProcessor(sender, limits or BatchLimits(schedule_delay_s=60))
        provider = TracerProvider(resource=RESOURCE)
        provider.add_span_processor(processor)
        made.append(provider)
        sdk_tracer = provider.get_tracer("notifactor", "1.0")
        tracer = LeanTracer(sdk_tracer, InstrumentationScope("notifactor", "1.0"))  # type: ignore[arg-type]
        return processor, sender, tracer

    yield build
    for provider in made:
        provider.shutdown()


def _end_spans(tracer: LeanTracer, count: int) -> list[int]:
    ids = []
    for index in range(count):
        span = tracer.start_child("step", None, SpanKind.INTERNAL, {"n": index})
        span.end()
        ids.append(span.get_span_context().span_id)
    return ids


def _id_bytes(ids: list[int]) -> list[bytes]:
    return [span_id.to_bytes(8, "big") for span_id in ids]


def test_what_is_sent_is_the_standard_encoding_of_the_same_spans(make: Make) -> None:
    processor, sender, tracer = make()
    memory = InMemorySpanExporter()
    tracer.processor.add_span_processor(SimpleSpanProcessor(memory))  # type: ignore[attr-defined]
    parent = SpanContext(7 << 64, 9, is_remote=True, trace_flags=TraceFlags(1))
    tracer.start_child("root", None, SpanKind.SERVER, {"a": "b", "n": 3}).end()
    tracer.start_child("child", parent, SpanKind.CONSUMER, {"ok": True, "x": 2.5}).end()
    failed = tracer.start_child("failed", parent)
    failed.record_exception(ValueError("boom"))
    failed.end()
    assert processor.force_flush()
    (request,) = sender.requests
    expected = encode_spans(memory.get_finished_spans())
    assert ExportTraceServiceRequest.FromString(request) == expected


def test_a_full_batch_is_sent_without_waiting_for_the_timer(make: Make) -> None:
    _processor, sender, tracer = make(BatchLimits(max_export_batch_size=4, schedule_delay_s=60))
    ids = _end_spans(tracer, 4)
    _until(lambda: len(sender.requests) == 1)
    assert sender.spans() == _id_bytes(ids)


def test_fewer_spans_than_a_batch_go_when_the_timer_fires(make: Make) -> None:
    _processor, sender, tracer = make(BatchLimits(max_export_batch_size=100, schedule_delay_s=0.05))
    ids = _end_spans(tracer, 3)
    _until(lambda: len(sender.requests) == 1)
    assert sender.spans() == _id_bytes(ids)


def test_spans_ending_while_a_request_is_sent_wait_for_the_next_tick(make: Make) -> None:
    """Under load spans end during every request; each tick used to chase them with
    a request of a few spans after another, each costing the thread a whole request."""
    processor, sender, tracer = make(BatchLimits(max_export_batch_size=100, schedule_delay_s=60))
    first = _end_spans(tracer, 5)
    sender.hold.clear()
    flushing = threading.Thread(target=processor.force_flush)
    flushing.start()
    assert sender.holding.wait(WAIT_S)
    later = _end_spans(tracer, 3)  # end while the first request is on its way
    sender.hold.set()
    flushing.join(WAIT_S)
    assert sender.spans() == _id_bytes(first)  # one request: what was queued when it began
    assert processor.force_flush()
    assert len(sender.requests) == 2
    assert sender.spans() == _id_bytes(first + later)


def test_spans_past_the_queue_bound_are_dropped_and_counted(make: Make) -> None:
    sender = Sender()
    sender.hold.clear()
    processor, _, tracer = make(
        BatchLimits(max_queue_size=4, max_export_batch_size=4, schedule_delay_s=60), sender
    )
    first = _end_spans(tracer, 4)
    _until(sender.holding.is_set)  # the thread took them and waits in the sender
    second = _end_spans(tracer, 4)
    _end_spans(tracer, 2)  # the queue is full: dropped
    assert processor.dropped == 2
    sender.hold.set()
    processor.shutdown()
    assert sender.spans() == _id_bytes(first + second)
    assert sender.stopped


def test_a_request_is_never_over_the_senders_size_limit(make: Make) -> None:
    processor, sender, tracer = make(sender=Sender(max_request_bytes=400))
    ids = _end_spans(tracer, 20)
    assert processor.force_flush()
    assert len(sender.requests) > 1
    assert all(len(request) <= 400 for request in sender.requests)
    assert sender.spans() == _id_bytes(ids)


def test_a_refused_or_failing_send_counts_its_spans_and_the_next_batch_still_goes(
    make: Make,
) -> None:
    processor, sender, tracer = make()
    sender.accept = False
    _end_spans(tracer, 3)
    processor.force_flush()
    assert processor.dropped == 3
    sender.accept, sender.error = True, ConnectionError("collector gone")
    _end_spans(tracer, 2)
    processor.force_flush()
    assert processor.dropped == 5
    sender.error = None
    ids = _end_spans(tracer, 2)
    sender.requests.clear()
    processor.force_flush()
    assert sender.spans() == _id_bytes(ids)


class _Unreadable(ReadableSpan):
    @property
    def name(self) -> str:
        raise RuntimeError("cannot read this span")


def test_a_span_that_cannot_be_encoded_costs_only_itself(make: Make) -> None:
    processor, sender, tracer = make()
    context = SpanContext(5 << 64, 6, is_remote=False, trace_flags=TraceFlags(1))
    processor.on_end(_Unreadable(name="x", context=context, resource=RESOURCE))
    ids = _end_spans(tracer, 2)
    processor.force_flush()
    assert sender.spans() == _id_bytes(ids)


def test_spans_the_sampler_left_out_are_not_queued(make: Make) -> None:
    processor, sender, _tracer = make()
    context = SpanContext(5 << 64, 6, is_remote=False, trace_flags=TraceFlags(0))
    processor.on_end(ReadableSpan(name="x", context=context, resource=RESOURCE))
    processor.force_flush()
    assert sender.requests == []


def test_shutdown_sends_what_is_queued_and_refuses_later_spans(make: Make) -> None:
    processor, sender, tracer = make()
    ids = _end_spans(tracer, 3)
    processor.shutdown()
    assert sender.spans() == _id_bytes(ids)
    assert sender.stopped
    _end_spans(tracer, 2)
    assert not processor.force_flush()
    assert sender.spans() == _id_bytes(ids)


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=300), max_size=40),
    max_spans=st.integers(min_value=1, max_value=50),
    max_bytes=st.one_of(st.just(0), st.integers(min_value=1, max_value=1000)),
)
def test_take_batch_takes_a_bounded_prefix_and_always_progresses(
    sizes: list[int], max_spans: int, max_bytes: int
) -> None:
    queue: collections.deque[Queued] = collections.deque(
        (RESOURCE, None, bytes(size)) for size in sizes
    )
    taken: list[int] = []
    while queue:
        batch = take_batch(queue, max_spans, max_bytes)
        assert batch, "a non-empty queue always gives a batch"
        assert len(batch) <= max_spans
        total = sum(len(item[2]) for item in batch)
        if max_bytes and len(batch) > 1:
            assert total <= max_bytes
        if max_bytes and queue and len(batch) < max_spans:
            # Cut short only because the next one would not fit.
            assert total + len(queue[0][2]) > max_bytes
        taken.extend(len(item[2]) for item in batch)
    assert taken == sizes


def test_the_limits_come_from_the_standard_variables() -> None:
    assert BatchLimits.from_environ({}) == BatchLimits()
    limits = BatchLimits.from_environ(
        {
            "OTEL_BSP_MAX_QUEUE_SIZE": "100",
            "OTEL_BSP_SCHEDULE_DELAY": "250",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": " 10 ",
        }
    )
    assert limits == BatchLimits(
        max_queue_size=100, schedule_delay_s=0.25, max_export_batch_size=10
    )
    # A queue below the default batch size, with the batch size left unset: the batch follows.
    small = BatchLimits.from_environ({"OTEL_BSP_MAX_QUEUE_SIZE": "1000"})
    assert (small.max_queue_size, small.max_export_batch_size) == (1000, 1000)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "lots"}, "OTEL_BSP_MAX_QUEUE_SIZE: must be a whole number"),
        ({"OTEL_BSP_SCHEDULE_DELAY": "0"}, "OTEL_BSP_SCHEDULE_DELAY: must be above 0"),
        (
            {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "-5"},
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: must be above 0",
        ),
        (
            {"OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "11"},
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: must not be above OTEL_BSP_MAX_QUEUE_SIZE (10)",
        ),
    ],
)
def test_a_bad_limit_is_a_configuration_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        BatchLimits.from_environ(environ)
    assert str(raised.value).startswith(message)


def test_the_tracer_skips_on_start_for_this_processor(make: Make) -> None:
    # on_start does nothing here, so notifactor's tracer builds no parent context for it.
    _processor, _sender, tracer = make()
    _end_spans(tracer, 1)
    assert tracer._on_start is False
    assert type(tracer.end_target) is EncodingBatchProcessor
