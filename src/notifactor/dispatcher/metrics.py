"""Dispatcher metrics (SPEC §7), on the default prometheus-client registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from notifactor.domain.dlq_entry import DlqReason

DLQ_EVENTS = Counter("dlq_events_total", "Entries appended to the dead-letter stream.", ["reason"])
# Every reason is scraped from the start (at 0), so rates and alerts on it
# see a series before the first dead letter.
for _reason in DlqReason:
    DLQ_EVENTS.labels(reason=_reason.value)
RETRY_ATTEMPTS = Counter("retry_attempts_total", "Delivery retries scheduled.")
STREAM_CONSUMER_LAG = Gauge(
    "stream_consumer_lag",
    "Entries of a partition stream not yet delivered to the dispatcher group.",
    ["partition"],
)
DISPATCHED = Counter(
    "dispatcher_entries_total",
    "Partition-stream entries the dispatcher finished, by outcome.",
    ["outcome"],
)
DLQ_ENTRIES = Gauge(
    "dlq_entries",
    "Entries in the dead-letter stream (read by partition 0's consumer every maintenance tick).",
)
DLQ_CAPACITY = Gauge(
    "dlq_capacity",
    "Length past which the dead-letter stream drops its oldest entries (they can no longer "
    "be replayed).",
)
