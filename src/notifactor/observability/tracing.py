"""OpenTelemetry tracing: provider set-up from ``otel_exporter`` and W3C trace-context helpers.

The trace of one notification crosses processes through the ``traceparent``
string the gateway writes into the stream envelope. The gateway opens an
``ingest`` span (:func:`ingest_span`) and stores :func:`traceparent_of`
that span in the envelope; the dispatcher and the edge
continue the trace with :func:`consume_span`::

    with consume_span("dispatch.consume", envelope.traceparent, {"partition": p}):
        ...

With ``otel_exporter = "none"`` no SDK provider is installed: spans are the
API's no-op spans, and :func:`traceparent_of` still returns a valid
``traceparent`` (a fresh child of the incoming one), so envelopes and logs
carry a trace id either way.

Spans are kept in :mod:`contextvars`, which Trio copies into each new task:
a span is "current" in the task that opened it and in tasks it starts while
it is open. notifactor's own spans name their parent (a ``traceparent``, or
a span of the same notification) and never take the current span as one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import Token
from types import TracebackType

import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.util.types import AttributeValue

from notifactor import __version__
from notifactor.config import Config
from notifactor.domain.envelope import new_traceparent, parse_traceparent
from notifactor.errors import ConfigError
from notifactor.observability.lean_tracer import LeanTracer, trace_flags

log = logging.getLogger("notifactor.tracing")

TRACER_NAME = "notifactor"
#: How long a stopping process waits for its last spans to be exported.
EXPORT_ON_EXIT_S = 2.0
SERVICE_NAME = "notifactor"

Attributes = Mapping[str, AttributeValue]


@attrs.define
class _TracingState:
    provider: TracerProvider | None = None
    # The tracer of ``provider``, made once: a provider's ``get_tracer`` builds
    # a new tracer (and resets a warnings filter) on every call.
    tracer: trace.Tracer | None = None


_STATE = _TracingState()


def build_tracer_provider(config: Config, *processors: SpanProcessor) -> TracerProvider:
    """A provider with this process's resource and the given span processors."""
    resource = Resource.create(
        {
            "service.name": SERVICE_NAME,
            "service.version": __version__,
            "service.instance.id": config.instance_id,
        }
    )
    # Stopped by shutdown_tracing, within a bound, not by an exit hook that
    # waits for an unreachable collector.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def configure_tracing(config: Config) -> TracerProvider | None:
    """Install the provider ``config.otel_exporter`` asks for; None for ``none``.

    ``otlp`` reads the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint,
    headers, timeout) and exports over HTTP/protobuf from a background thread,
    so a slow collector never blocks the event loop. Each span is encoded as
    it ends and queued as bytes (:mod:`notifactor.observability.otlp_batching`).
    A bad ``OTEL_BSP_*`` value is a :class:`~notifactor.errors.ConfigError`.
    """
    processor: SpanProcessor
    if config.otel_exporter == "none":
        return None
    if config.otel_exporter == "console":
        processor = SimpleSpanProcessor(ConsoleSpanExporter())
    else:
        _check_otlp_protocol()
        processor = _otlp_processor()
    provider = build_tracer_provider(config, processor)
    use_tracer_provider(provider)
    # Also the global provider, so instrumented libraries join the same traces.
    # The API allows setting it once per process; later calls only warn.
    trace.set_tracer_provider(provider)
    log.info("tracing enabled", extra={"event": "tracing", "reason": config.otel_exporter})
    return provider


def _otlp_processor() -> SpanProcessor:
    """Spans encoded as they end and sent in batches; the SDK's batching if the lean path is off."""
    from notifactor.observability.otlp_batching import BatchLimits, EncodingBatchProcessor
    from notifactor.observability.otlp_exporter import LeanOTLPSpanExporter

    limits = BatchLimits.from_environ(os.environ)
    exporter = LeanOTLPSpanExporter()
    if exporter.lean:
        return EncodingBatchProcessor(exporter, limits)
    return BatchSpanProcessor(
        exporter,
        max_queue_size=limits.max_queue_size,
        schedule_delay_millis=limits.schedule_delay_s * 1000,
        max_export_batch_size=limits.max_export_batch_size,
    )


#: The standard variables that choose the OTLP transport, most specific first.
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


def _check_otlp_protocol() -> None:
    """OTLP goes over HTTP/protobuf only: another protocol asked for is a configuration error."""
    for name in _PROTOCOL_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            if value != "http/protobuf":
                raise ConfigError(name, f"only http/protobuf is supported (got {value!r})")
            return


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Make notifactor's spans go to ``provider`` (None: back to the global one).

    Tests and benchmarks use this to switch an in-memory provider on and off
    within one process; the global provider can only be set once.
    """
    _STATE.provider = provider
    _STATE.tracer = None


def shutdown_tracing(timeout_s: float = EXPORT_ON_EXIT_S) -> bool:
    """Export what is queued and stop the installed provider, for at most ``timeout_s``.

    Returns False when the export did not finish in time (a collector that is
    down or slow): the process then exits without those spans rather than
    past its shutdown grace period.
    """
    provider = _STATE.provider
    if provider is None:
        return True
    stopper = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
    stopper.start()
    stopper.join(timeout_s)
    if stopper.is_alive():
        log.warning(
            "spans not exported within %.1fs of stopping: left behind",
            timeout_s,
            extra={"event": "tracing", "reason": "export_timeout"},
        )
        return False
    return True


def tracer() -> trace.Tracer:
    """notifactor's tracer on the current provider.

    On an SDK provider, a :class:`~notifactor.observability.lean_tracer.LeanTracer`
    over the provider's own tracer: the provider's sampler, resource and span
    processors, with spans that cost a third of the SDK's.
    """
    if _STATE.tracer is None:
        provider = _STATE.provider or trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):
            sdk_tracer = provider.get_tracer(TRACER_NAME, __version__)
            scope = InstrumentationScope(TRACER_NAME, __version__)
            # A no-op tracer when the SDK is switched off (OTEL_SDK_DISABLED).
            _STATE.tracer = (
                LeanTracer(sdk_tracer, scope) if isinstance(sdk_tracer, SdkTracer) else sdk_tracer
            )
        else:
            # The global proxy tracer: it follows a provider set later.
            _STATE.tracer = trace.get_tracer(TRACER_NAME, __version__)
    return _STATE.tracer


def _recording_off() -> bool:
    """No provider can record: neither ours nor a global SDK one is installed."""
    return _STATE.provider is None and isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider
    )


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """The remote span context a ``traceparent`` carries (None if absent or invalid).

    Parsed by :func:`~notifactor.domain.envelope.parse_traceparent`, which is
    cheaper than the W3C propagator on paths that run per item.
    """
    carried = parse_traceparent(traceparent)
    if carried is None:
        return None
    trace_id, span_id, flags = carried
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace_flags(flags))


def traceparent_of(span: Span, fallback_parent: str | None = None) -> str:
    """The ``traceparent`` of ``span``, to carry across a process boundary.

    With tracing off, a fresh child of ``fallback_parent`` (or a new trace)
    keeps envelopes and logs correlated. With tracing on, a span the sampler
    (``OTEL_TRACES_SAMPLER``) left out is carried with its "not sampled" flag.
    """
    context = span.get_span_context()
    # A span the sampler left out still has ids and carries "not sampled"
    # downstream, so the other processes leave the whole trace out too.
    if span.is_recording() or (context.is_valid and not _recording_off()):
        # What the W3C propagator would write, without its carrier round trip.
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    return new_traceparent(fallback_parent)


def current_trace_id() -> str | None:
    """The 32-hex trace id of the current span, for log lines (None without one)."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class SpanScope:
    """A span made current for the duration of a ``with`` block; ``as`` gives the span.

    What ``start_as_current_span`` does, as one small class instead of the
    API's nested generator context managers (this runs for every request and
    every delivered notification). An exception is recorded and marks the span
    failed; Trio's ``Cancelled`` is not a failure of the step. With tracing
    off the carried context is made current, for the log lines' trace id, and
    nothing is recorded.
    """

    __slots__ = ("_attributes", "_kind", "_name", "_owned", "_span", "_token", "_traceparent")

    _span: Span
    _token: Token[Context]
    _owned: bool

    def __init__(
        self,
        name: str,
        traceparent: str | None,
        kind: SpanKind,
        attributes: Attributes | None,
    ) -> None:
        self._name, self._traceparent = name, traceparent
        self._kind, self._attributes = kind, attributes

    def __enter__(self) -> Span:
        traceparent = self._traceparent
        if _recording_off():
            span_context = span_context_of(traceparent)
            span: Span = (
                trace.INVALID_SPAN if span_context is None else NonRecordingSpan(span_context)
            )
            self._owned = False
        else:
            span = _start(self._name, span_context_of(traceparent), self._kind, self._attributes)
            self._owned = True
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self._span
        if self._owned and isinstance(error, Exception):
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        otel_context.detach(self._token)
        if self._owned:
            span.end()


def ingest_span(
    name: str, incoming_traceparent: str | None, attributes: Attributes | None = None
) -> SpanScope:
    """A server span for accepting a request, child of the client's ``traceparent`` if valid."""
    return SpanScope(name, incoming_traceparent, SpanKind.SERVER, attributes)


def consume_span(
    name: str,
    traceparent: str | None,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.CONSUMER,
) -> SpanScope:
    """A span continuing the trace of an envelope (``dispatch.consume``, ``edge.deliver``).

    Args:
        name: the span name.
        traceparent: the envelope's ``traceparent``; an invalid one starts a new trace.
        attributes: span attributes (ids and partition numbers; never content or tokens).
        kind: ``CONSUMER`` for stream reads, ``PRODUCER`` for re-enqueues,
            ``INTERNAL`` for steps inside one process.
    """
    return SpanScope(name, traceparent, kind, attributes)


def mark_error(span: Span, description: str) -> None:
    """Record a handled failure on ``span`` (one that did not raise out of it)."""
    span.set_status(Status(StatusCode.ERROR, description))


def start_item_spans(
    name: str,
    traceparents: Sequence[str | None],
    attributes: Iterable[Attributes | None],
    *,
    kind: SpanKind = SpanKind.CONSUMER,
) -> list[Span]:
    """One span per item of a batch, each continuing its own envelope's trace.

    A batch is processed together, but every notification keeps a trace of
    its own; the caller ends each span with :func:`end_item_span`. With
    tracing off these are the shared invalid span, at no cost per item, and
    ``attributes`` (one per item; a generator is fine) is never read.
    """
    if _recording_off():
        return [trace.INVALID_SPAN] * len(traceparents)
    return [
        _start(name, span_context_of(parent), kind, attrs)
        for parent, attrs in zip(traceparents, attributes, strict=True)
    ]


@contextmanager
def child_item_spans(name: str, parents: Sequence[Span]) -> Iterator[list[Span]]:
    """A child span under each of ``parents`` around one step done for the whole batch.

    An exception marks every child as failed and propagates.
    """
    if _recording_off():
        yield [trace.INVALID_SPAN] * len(parents)
        return
    children = [
        _start(name, parent.get_span_context(), SpanKind.INTERNAL, None) for parent in parents
    ]
    try:
        yield children
    except Exception as error:
        for child in children:
            child.record_exception(error)
            mark_error(child, type(error).__name__)
        raise
    finally:
        for child in children:
            child.end()


def parent_context(span: Span) -> SpanContext | None:
    """The parent for later child spans of ``span``; None when it is not recording.

    Lets a step that happens later, in another task (a session writing the
    frame the fan-out queued), join the trace without any cost when tracing
    is off.
    """
    return span.get_span_context() if span.is_recording() else None


def start_child_span(name: str, parent: SpanContext, attributes: Attributes | None = None) -> Span:
    """An internal span under ``parent`` (from :func:`parent_context`); the caller ends it."""
    return _start(name, parent, SpanKind.INTERNAL, attributes)


def _start(
    name: str, parent: SpanContext | None, kind: SpanKind, attributes: Attributes | None
) -> Span:
    """A span under ``parent``, or the root of a new trace when there is none.

    notifactor's spans name their parent (from an envelope's ``traceparent``
    or a span of the same notification); they never take the current span.
    """
    spans = tracer()
    if type(spans) is LeanTracer:
        return spans.start_child(name, parent, kind, attributes)
    context = Context() if parent is None else trace.set_span_in_context(NonRecordingSpan(parent))
    return spans.start_span(name, context=context, kind=kind, attributes=attributes)


def end_item_span(span: Span, error: str | None = None) -> None:
    """End one item's span, failed with ``error`` if given."""
    if error is not None:
        mark_error(span, error)
    span.end()
