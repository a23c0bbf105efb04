"""A tracer for notifactor's own spans that costs a third of the SDK's per span.

The OpenTelemetry SDK's tracer builds each span with a lock, bounded
attribute and event containers, and a second read-only copy handed to the
span processors when it ends: about 20 µs a span on this project's hardware.
A notification crosses five or six spans, so that was most of what tracing
cost (see ``docs/observability.md``).

:class:`LeanTracer` wraps an SDK tracer and keeps everything that decides
what is recorded and where it goes: the provider's sampler (so
``OTEL_TRACES_SAMPLER`` applies), id generator, resource and span
processors (batching and exporters). Only the span object is its own:
:class:`LeanSpan` is at once the live span (the API's
:class:`~opentelemetry.trace.Span`) and what the processors read when it
ends (the SDK's :class:`~opentelemetry.sdk.trace.ReadableSpan`), with plain
containers, as the SDK's own span class is both.

What it leaves out, on purpose, because notifactor's spans do not use it:
span links, the SDK's span limits beyond a cap on attributes and events per
span, and the SDK's experimental self-metrics and tracer configurator. An
attribute value outside the API's types (None, bytes, a mapping, a list of
mixed types) is dropped, where the SDK keeps some of them.
Spans are used by one task at a time (a Trio process has one thread), so no
lock is taken.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import export as sdk_export
from opentelemetry.sdk.trace.sampling import Decision, ParentBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util import types

log = logging.getLogger("notifactor.tracing")

#: Most attributes, and most events, one span keeps (the SDK's default limit).
MAX_ATTRIBUTES = 128
MAX_EVENTS = 128

_UNSET = Status(StatusCode.UNSET)
#: How the standard ParentBased sampler describes its parent delegates.
_STANDARD_PARENT_DELEGATES = (
    ",remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,"
    "localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}"
)
_PLAIN = (str, bool, int, float)
#: TraceFlags by value, made once.
_FLAGS = [TraceFlags(value) for value in range(256)]
_INHERITED_FLAGS = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID


def trace_flags(value: int) -> TraceFlags:
    """The ``TraceFlags`` of an 8-bit value, without making a new one."""
    return _FLAGS[value & 0xFF]


#: ``on_start`` of the processors that do nothing there.
_NO_OP_ON_START = frozenset(
    {
        sdk_trace.SpanProcessor.on_start,
        sdk_export.BatchSpanProcessor.on_start,
        sdk_export.SimpleSpanProcessor.on_start,
    }
)
#: "Build the processors' parent context from the parent span context."
_FROM_PARENT = object()
_PLAIN_TYPES = frozenset(_PLAIN)


def clean_value(value: object) -> types.AttributeValue | None:
    """``value`` as an attribute value, or None when it cannot be one.

    Strings, booleans, numbers, and sequences of one of those kinds (a list
    becomes a tuple), as the OpenTelemetry API allows.
    """
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = tuple(value)
        kinds = {bool if isinstance(item, bool) else type(item) for item in items}
        if not kinds or (len(kinds) == 1 and kinds <= {str, bool, int, float}):
            return items
        if kinds == {int, float}:
            return tuple(float(item) for item in items)
    return None


def _cleaned(attributes: Mapping[str, object] | None) -> dict[str, types.AttributeValue]:
    if not attributes:
        return {}
    if len(attributes) <= MAX_ATTRIBUTES and all(
        type(value) in _PLAIN_TYPES for value in attributes.values()
    ):
        return dict(attributes)  # type: ignore[arg-type]  # the common case: nothing to clean
    kept: dict[str, types.AttributeValue] = {}
    for key, value in (attributes or {}).items():
        cleaned = value if isinstance(value, _PLAIN) else clean_value(value)
        if cleaned is None:
            log.debug("span attribute %r dropped: %r is not an attribute value", key, value)
        elif len(kept) < MAX_ATTRIBUTES:
            kept[key] = cleaned
    return kept


class LeanSpan(trace.Span, sdk_trace.ReadableSpan):
    """A recording span, read by the span processors as it is once ended."""

    # What every new span starts with, kept on the class (a span is made per step).
    _instrumentation_info = None
    _links: tuple[Link, ...] = ()
    _end_time: int | None = None
    _status = _UNSET
    _events: Sequence[sdk_trace.Event] = ()

    def __init__(
        self,
        *,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, object] | None,
        tracer: LeanTracer,
        start_time: int | None = None,
    ) -> None:
        # What ReadableSpan.__init__ sets, set directly; the rest is on the class.
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_scope = tracer.scope
        self._parent = parent
        self._start_time = start_time if start_time is not None else time.time_ns()
        self._attributes = _cleaned(attributes)
        self._resource = tracer.resource
        self._processor = tracer.end_target

    # --- trace.Span ----------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end_time is not None:
            return
        cleaned = value if isinstance(value, _PLAIN) else clean_value(value)
        attributes: dict[str, types.AttributeValue] = self._attributes  # type: ignore[assignment]
        if cleaned is None:
            log.debug("span attribute %r dropped: %r is not an attribute value", key, value)
        elif key in attributes:  # moves to the end, as in the SDK
            del attributes[key]
            attributes[key] = cleaned
        elif len(attributes) < MAX_ATTRIBUTES:
            attributes[key] = cleaned

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        events = self._events
        if self._end_time is not None or len(events) >= MAX_EVENTS:
            return
        if not isinstance(events, list):  # the first event: the span's own list
            events = self._events = []
        events.append(
            sdk_trace.Event(
                name,
                _cleaned(attributes),
                timestamp if timestamp is not None else time.time_ns(),
            )
        )

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        log.debug("span links are not recorded by notifactor's tracer")

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final, and UNSET never replaces anything.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        event: dict[str, Any] = {
            "exception.type": (
                f"{module}.{kind.__qualname__}"
                if module and module != "builtins"
                else kind.__qualname__
            ),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        event.update(attributes or {})
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time.time_ns()
        self._processor.on_end(self)


class LeanTracer(trace.Tracer):
    """notifactor's tracer on an SDK provider: its sampling, ids, resource and processors.

    Args:
        sdk_tracer: the provider's tracer for notifactor (its ``sampler``,
            ``id_generator``, ``resource`` and ``span_processor``).
        scope: the instrumentation scope spans are reported under.
    """

    def __init__(self, sdk_tracer: sdk_trace.Tracer, scope: InstrumentationScope) -> None:
        self.sampler = sdk_tracer.sampler
        self.id_generator = sdk_tracer.id_generator
        self.resource = sdk_tracer.resource
        self.processor = sdk_tracer.span_processor
        self.scope = scope
        # The standard ParentBased sampler (whatever its root): a span with a
        # parent is sampled exactly when its parent is, and keeps its parent's
        # trace state. Decided here without a call per span.
        description = str(self.sampler.get_description())
        self._follows_parent = isinstance(self.sampler, ParentBased) and description.endswith(
            _STANDARD_PARENT_DELEGATES
        )
        # ParentBased(ALWAYS_ON), the default: every root span is sampled, with
        # no trace state and its attributes as given.
        self._root_always_on = self._follows_parent and description == (
            "ParentBased{root:AlwaysOnSampler" + _STANDARD_PARENT_DELEGATES
        )
        self._root_flags = _FLAGS[
            TraceFlags.SAMPLED
            | (TraceFlags.RANDOM_TRACE_ID if self.id_generator.is_trace_id_random() else 0)
        ]
        self._processors_seen: object = _FROM_PARENT  # never a processor list
        self._on_start = True
        self.end_target: sdk_trace.SpanProcessor = self.processor

    def _follow_processors(self) -> None:
        """Note the provider's span processors, when they changed since the last span.

        Most processors do nothing in ``on_start``: it is called only when
        one does. With one processor, a span ends straight into it.
        """
        processors = getattr(self.processor, "_span_processors", None)
        if processors is self._processors_seen:
            return
        self._processors_seen = processors
        if processors is None:  # not the SDK's processor list: everything through it
            self._on_start, self.end_target = True, self.processor
            return
        self._on_start = any(
            type(processor).on_start not in _NO_OP_ON_START for processor in processors
        )
        self.end_target = processors[0] if len(processors) == 1 else self.processor

    def start_span(  # noqa: PLR0917 (the API's signature)
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is not None and not parent.is_valid:
            parent = None
        if parent is None or not self._follows_parent:
            return self._start_sampled(name, context, parent, kind, attributes, links, start_time)
        return self._start_under(name, parent, kind, attributes, start_time, context)

    def start_child(
        self,
        name: str,
        parent: SpanContext | None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        start_time: int | None = None,
    ) -> trace.Span:
        """``start_span`` with the parent given as a span context (None: a new trace).

        What ``start_span`` does for a context holding that parent, without
        building the context: the path every notifactor span takes.
        """
        if parent is not None and not parent.is_valid:
            parent = None
        if parent is not None and self._follows_parent:
            return self._start_under(name, parent, kind, attributes, start_time)
        if parent is None and self._root_always_on:
            span_context = SpanContext(
                self.id_generator.generate_trace_id(),
                self.id_generator.generate_span_id(),
                is_remote=False,
                trace_flags=self._root_flags,
            )
            return self._recording(name, span_context, None, kind, attributes, start_time)
        # The sampler reads the parent from a context: an empty one for a new
        # trace, never the current span.
        context = (
            Context()
            if parent is None
            else trace.set_span_in_context(trace.NonRecordingSpan(parent))
        )
        return self._start_sampled(name, context, parent, kind, attributes, (), start_time)

    def _start_under(  # noqa: PLR0917 (one span's fields)
        self,
        name: str,
        parent: SpanContext,
        kind: SpanKind,
        attributes: types.Attributes,
        start_time: int | None,
        context: Context | object | None = _FROM_PARENT,
    ) -> trace.Span:
        """A child of a valid ``parent`` under the standard ParentBased sampler.

        It is sampled exactly when its parent is, and keeps the parent's
        "sampled" and "random trace id" bits and trace state.
        """
        flags = parent.trace_flags & _INHERITED_FLAGS
        span_context = SpanContext(
            parent.trace_id,
            self.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=_FLAGS[flags],
            trace_state=parent.trace_state,
        )
        if not flags & TraceFlags.SAMPLED:
            return trace.NonRecordingSpan(span_context)
        return self._recording(name, span_context, parent, kind, attributes, start_time, context)

    def _start_sampled(  # noqa: PLR0917 (the API's arguments, passed on)
        self,
        name: str,
        context: Context | None,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: types.Attributes,
        links: Sequence[Link] | None,
        start_time: int | None,
    ) -> trace.Span:
        """A span whose sampling the sampler decides (a root, or any span under another sampler)."""
        if parent is not None:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        else:
            trace_id = self.id_generator.generate_trace_id()
            random_id = self.id_generator.is_trace_id_random()
        sampled = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        flags = TraceFlags.SAMPLED if sampled.decision is Decision.RECORD_AND_SAMPLE else 0
        if random_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(
            trace_id,
            self.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=_FLAGS[flags],
            trace_state=sampled.trace_state,
        )
        if sampled.decision is Decision.DROP:
            return trace.NonRecordingSpan(span_context)
        return self._recording(
            name, span_context, parent, kind, sampled.attributes, start_time, context
        )

    def _recording(  # noqa: PLR0917 (one span's fields)
        self,
        name: str,
        span_context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: types.Attributes,
        start_time: int | None,
        context: Context | object | None = _FROM_PARENT,
    ) -> LeanSpan:
        self._follow_processors()
        span = LeanSpan(
            name=name,
            context=span_context,
            parent=parent,
            kind=kind,
            attributes=attributes,
            tracer=self,
            start_time=start_time,
        )
        if self._on_start:
            if context is _FROM_PARENT:
                # The processors see the parent as a context, as the SDK gives it.
                context = (
                    None
                    if parent is None
                    else trace.set_span_in_context(trace.NonRecordingSpan(parent))
                )
            self.processor.on_start(span, parent_context=context)  # type: ignore[arg-type]
        return span

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # noqa: PLR0917 (the API's signature)
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current
