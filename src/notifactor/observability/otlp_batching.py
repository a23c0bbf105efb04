"""The span processor for OTLP export: each span is encoded as it ends, and sent in batches.

The SDK's ``BatchSpanProcessor`` keeps every ended span object in its queue
until a background thread hands a batch to the exporter, which encodes it
there. :class:`EncodingBatchProcessor` encodes a span to its OTLP bytes in
``on_end`` (:func:`~notifactor.observability.otlp_encoding.span_field`,
a short path for notifactor's own spans) and queues only those bytes; its
thread joins them into requests and posts them with the OTLP/HTTP
exporter's client. The queue then holds no span objects for the garbage
collector to walk, and the thread does little while holding the GIL.

It keeps the batching processor's contract and its standard variables
(:class:`BatchLimits`, with larger defaults than the SDK's):

* at most ``OTEL_BSP_MAX_QUEUE_SIZE`` spans wait; a span past that is
  dropped, and the drops are logged (one line per export cycle);
* a batch goes out when ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` spans are
  waiting, or ``OTEL_BSP_SCHEDULE_DELAY`` ms after the last one went;
* ``force_flush`` and ``shutdown`` send what is queued;
* a request is never larger than the exporter's size limit: a batch is cut
  short, or halved, to fit it (a single span over it is dropped);
* spans the sampler left out are never queued.

``OTEL_BSP_EXPORT_TIMEOUT`` is not used (nor is it by the SDK's processor):
the exporter's own timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``) bounds each
request.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping
from typing import Protocol

import attrs
from opentelemetry.context import (
    _SUPPRESS_INSTRUMENTATION_KEY,
    attach,
    detach,
    set_value,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from notifactor.errors import ConfigError
from notifactor.observability.otlp_encoding import SpanField, encode_grouped_request, span_field

log = logging.getLogger("notifactor.tracing")

#: A queued span: its resource, its scope, and its ``ScopeSpans.spans`` field.
Queued = SpanField


class EncodedSpanSender(Protocol):
    """Where encoded requests go: the lean OTLP/HTTP exporter."""

    @property
    def max_request_bytes(self) -> int:
        """The largest request the sender accepts (0: no limit)."""
        ...

    def send_encoded(self, data: bytes) -> bool:
        """Post one serialised ``ExportTraceServiceRequest``; whether it was accepted."""
        ...

    def shutdown(self) -> None:
        """Release the sender's connections."""
        ...


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be a whole number (got {raw!r})") from None
    if value <= 0:
        raise ConfigError(name, f"must be above 0 (got {value})")
    return value


#: notifactor's defaults: four times the SDK's queue and batch sizes (2,048
#: and 512). A queued span is about 200 bytes, not a span object, and each
#: request costs the exporter about half a millisecond of CPU whatever its
#: size, so larger batches cost less per span.
DEFAULT_MAX_QUEUE_SIZE = 8192
DEFAULT_MAX_EXPORT_BATCH_SIZE = 2048
DEFAULT_SCHEDULE_DELAY_MS = 5000


@attrs.frozen
class BatchLimits:
    """How spans are batched (the standard ``OTEL_BSP_*`` variables)."""

    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    schedule_delay_s: float = DEFAULT_SCHEDULE_DELAY_MS / 1000
    max_export_batch_size: int = DEFAULT_MAX_EXPORT_BATCH_SIZE

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> BatchLimits:
        """The limits the variables set; :class:`ConfigError` for a value that is not one."""
        queue = _positive_int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE_SIZE)
        limits = cls(
            max_queue_size=queue,
            schedule_delay_s=_positive_int(
                environ, "OTEL_BSP_SCHEDULE_DELAY", DEFAULT_SCHEDULE_DELAY_MS
            )
            / 1000,
            # Left unset, the batch follows a smaller queue down.
            max_export_batch_size=_positive_int(
                environ,
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                min(DEFAULT_MAX_EXPORT_BATCH_SIZE, queue),
            ),
        )
        if limits.max_export_batch_size > limits.max_queue_size:
            raise ConfigError(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                f"must not be above OTEL_BSP_MAX_QUEUE_SIZE ({limits.max_queue_size})",
            )
        return limits


def take_batch(queue: collections.deque[Queued], max_spans: int, max_bytes: int) -> list[Queued]:
    """Take spans from the front of ``queue``: at most ``max_spans``, at most ``max_bytes`` of them.

    A span larger than ``max_bytes`` on its own is taken alone (the sender
    refuses it, and it is counted as dropped). ``max_bytes = 0``: no limit.
    """
    batch: list[Queued] = []
    size = 0
    while queue and len(batch) < max_spans:
        item = queue[0]
        if max_bytes and batch and size + len(item[2]) > max_bytes:
            break
        batch.append(queue.popleft())
        size += len(item[2])
    return batch


class EncodingBatchProcessor(SpanProcessor):
    """Encode spans as they end; send them in batches from one background thread.

    Args:
        sender: posts the encoded requests.
        limits: queue size, batch size and delay.
    """

    def __init__(self, sender: EncodedSpanSender, limits: BatchLimits | None = None) -> None:
        self._sender = sender
        self._limits = limits or BatchLimits()
        self._queue: collections.deque[Queued] = collections.deque()
        self._wake = threading.Event()
        # One export at a time: the thread's and a force_flush's.
        self._export_lock = threading.Lock()
        self._stopped = False
        self._dropped = 0
        self._failed = 0
        self._thread = threading.Thread(target=self._work, name="otlp-span-export", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Spans dropped so far: queue full, or refused by the sender."""
        return self._dropped + self._failed

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled or self._stopped:
            return
        queue = self._queue
        if len(queue) >= self._limits.max_queue_size:
            self._dropped += 1  # read by the export thread, which reports it
            return
        try:
            field = span_field(span)
        except Exception as error:  # one span the encoder cannot read costs that span only
            log.warning(
                "span not exported: it could not be encoded",
                extra={"event": "otlp_export", "reason": repr(error)},
            )
            return
        queue.append((span.resource, span.instrumentation_scope, field))
        if len(queue) >= self._limits.max_export_batch_size and not self._wake.is_set():
            self._wake.set()

    def _work(self) -> None:
        delay = self._limits.schedule_delay_s
        reported = 0
        while not self._stopped:
            woken = self._wake.wait(delay)
            self._wake.clear()
            if self._stopped:
                break
            # Woken by a full batch: send full batches; on the timer: everything waiting.
            self._export(full_batches_only=woken)
            reported = self._report_drops(reported)
        self._export(full_batches_only=False)
        self._report_drops(reported)

    def _report_drops(self, reported: int) -> int:
        dropped = self.dropped
        if dropped > reported:
            log.warning(
                "spans dropped: %d since the last report (%d in all)",
                dropped - reported,
                dropped,
                extra={"event": "otlp_export", "reason": "queue_full_or_export_failed"},
            )
        return dropped

    def _export(self, *, full_batches_only: bool, deadline: float | None = None) -> bool:
        """Send queued spans; False if ``deadline`` (monotonic) passed first."""
        limits = self._limits
        with self._export_lock:
            token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            try:
                # What is queued now. Spans that end while it is being sent
                # wait for the next tick, or go as a full batch: chasing them
                # sent a request of a few spans after every request under load.
                waiting = 0 if full_batches_only else len(self._queue)
                while self._queue and (
                    waiting > 0 or len(self._queue) >= limits.max_export_batch_size
                ):
                    if deadline is not None and time.monotonic() > deadline:
                        return False
                    batch = take_batch(
                        self._queue, limits.max_export_batch_size, self._sender.max_request_bytes
                    )
                    waiting -= len(batch)
                    self._send(batch)
            finally:
                detach(token)
        return True

    def _send(self, batch: list[Queued]) -> None:
        data = encode_grouped_request(batch)
        limit = self._sender.max_request_bytes
        if limit and len(data) > limit and len(batch) > 1:
            # The resource and scope around the spans took it over: halve it.
            half = len(batch) // 2
            self._send(batch[:half])
            self._send(batch[half:])
            return
        try:
            sent = self._sender.send_encoded(data)
        except Exception as error:  # the sender's own failure: these spans only
            log.warning(
                "span batch not exported", extra={"event": "otlp_export", "reason": repr(error)}
            )
            sent = False
        if not sent:
            self._failed += len(batch)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send everything queued now, on the calling thread, within ``timeout_millis``."""
        if self._stopped:
            return False
        return self._export(
            full_batches_only=False, deadline=time.monotonic() + timeout_millis / 1000
        )

    def shutdown(self) -> None:
        """Send what is queued, stop the thread, and release the sender."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._thread.join()
        self._sender.shutdown()
