"""The rows each record is written as, with their timestamps and TTLs.

Writes never read first and never use lightweight transactions. Every row is
written with an explicit ``USING TIMESTAMP``:

* notification columns with the notification's ``created_at``: replays write
  identical cells at an identical timestamp, so they change nothing;
* delivery-state cells (``state``, ``last_error``, ``updated_us``) with
  :func:`~notifactor.domain.delivery_state.write_timestamp`, so Cassandra's
  last-write-wins picks the same winner as
  :func:`~notifactor.domain.delivery_state.merge`, whatever the arrival order;
* the ``attempts`` cell in its own statement, timestamped with the count, so
  the largest count wins independently of the state.

TTLs count from each record's own time (tenant ``retention_days``); a record
already past its retention is not written at all. Every write also indexes its
day in the :mod:`~notifactor.adapters.cassandra_store.bucket_index`.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from notifactor.adapters.cassandra_store.batches import RowWrite
from notifactor.adapters.cassandra_store.bucket_index import (
    AUDIT_SCOPE,
    DELIVERIES_SCOPE,
    DLQ_SCOPE,
    bucket_writes,
    inbox_scope,
)
from notifactor.adapters.cassandra_store.execution import StatementRunner
from notifactor.domain.audit import AuditEvent
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import attempts_timestamp, write_timestamp
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.domain.retention import ttl_seconds
from notifactor.domain.timestamps import day_bucket, to_us
from notifactor.ports.notification_store import RetentionPolicy


class RowWriteBuilder:
    """Turns records into the single-row writes that store them, ungrouped.

    Pure but for binding: the caller passes ``now_us``, the time TTLs count
    down from, and decides how the writes are batched and sent.
    """

    def __init__(self, runner: StatementRunner, retention_days: RetentionPolicy) -> None:
        self._runner = runner
        self._retention_days = retention_days

    def _ttl(self, tenant_id: str, record_time_us: int, now_us: int) -> int | None:
        return ttl_seconds(record_time_us, self._retention_days(tenant_id), now_us)

    def notifications(self, notifications: Sequence[Notification], now_us: int) -> list[RowWrite]:
        """The notification row, its inbox and history rows, and their index rows."""
        bind = self._runner.bind
        writes: list[RowWrite] = []
        buckets: dict[tuple[str, str, int], int] = {}
        for n in notifications:
            created_us = n.created_at_us
            ttl = self._ttl(n.tenant_id, created_us, now_us)
            if ttl is None:
                continue
            day = day_bucket(created_us)
            metadata = msgspec.json.encode(n.metadata).decode()
            size = len(n.content) + len(metadata) + 128
            writes.append(
                RowWrite(
                    partition=("notifications", n.tenant_id, n.id),
                    statement=bind(
                        "insert_notification",
                        (
                            n.tenant_id,
                            n.id,
                            n.user_id,
                            n.channel,
                            n.content,
                            n.priority,
                            metadata,
                            created_us,
                            created_us,
                            ttl,
                        ),
                    ),
                    size=size,
                )
            )
            writes.append(
                RowWrite(
                    partition=("inbox", n.tenant_id, n.user_id, day),
                    statement=bind(
                        "insert_inbox",
                        (
                            n.tenant_id,
                            n.user_id,
                            day,
                            created_us,
                            n.id,
                            n.channel,
                            n.content,
                            n.priority,
                            metadata,
                            created_us,
                            ttl,
                        ),
                    ),
                    size=size,
                )
            )
            writes.append(
                RowWrite(
                    partition=("history", n.tenant_id, day),
                    statement=bind(
                        "insert_history",
                        (n.tenant_id, day, created_us, n.id, n.user_id, n.channel, created_us, ttl),
                    ),
                    size=128,
                )
            )
            for scope in (DELIVERIES_SCOPE, inbox_scope(n.user_id)):
                key = (n.tenant_id, scope, day)
                buckets[key] = max(buckets.get(key, 0), ttl)
        return writes + bucket_writes(self._runner, buckets)

    def delivery_updates(self, updates: Sequence[DeliveryUpdate], now_us: int) -> list[RowWrite]:
        """The state and the attempts cells of each update, in all three copies of the status."""
        bind = self._runner.bind
        writes: list[RowWrite] = []
        for u in updates:
            created_us = to_us(u.created_at)
            ttl = self._ttl(u.tenant_id, created_us, now_us)
            if ttl is None:
                continue
            status = u.status
            day = day_bucket(created_us)
            state_ts = write_timestamp(status.state, status.event_time_us)
            attempts_ts = attempts_timestamp(status.attempts)
            state_cells = (status.state.value, status.last_error, status.event_time_us)
            size = len(status.last_error) + 96
            # (statement prefix, partition key, full primary key) of each copy.
            targets = (
                (
                    "status",
                    ("status", u.tenant_id, u.notification_id),
                    (u.tenant_id, u.notification_id, u.recipient_id),
                ),
                (
                    "inbox",
                    ("inbox", u.tenant_id, u.recipient_id, day),
                    (u.tenant_id, u.recipient_id, day, created_us, u.notification_id),
                ),
                (
                    "history",
                    ("history", u.tenant_id, day),
                    (u.tenant_id, day, created_us, u.notification_id, u.recipient_id),
                ),
            )
            for prefix, partition, key in targets:
                writes.append(
                    RowWrite(
                        partition=partition,
                        statement=bind(f"{prefix}_state", (state_ts, ttl, *state_cells, *key)),
                        size=size,
                    )
                )
                writes.append(
                    RowWrite(
                        partition=partition,
                        statement=bind(
                            f"{prefix}_attempts", (attempts_ts, ttl, status.attempts, *key)
                        ),
                        size=64,
                    )
                )
        return writes

    def audit_events(self, events: Sequence[AuditEvent], now_us: int) -> list[RowWrite]:
        """One audit-log row per event, and the index rows of their days."""
        writes: list[RowWrite] = []
        buckets: dict[tuple[str, str, int], int] = {}
        for e in events:
            ttl = self._ttl(e.tenant_id, e.event_time_us, now_us)
            if ttl is None:
                continue
            day = day_bucket(e.event_time_us)
            metadata = msgspec.json.encode(e.metadata).decode()
            writes.append(
                RowWrite(
                    partition=("audit", e.tenant_id, day),
                    statement=self._runner.bind(
                        "insert_audit",
                        (
                            e.tenant_id,
                            day,
                            e.event_time_us,
                            e.event_id,
                            e.event_type,
                            metadata,
                            e.event_time_us,
                            ttl,
                        ),
                    ),
                    size=len(metadata) + 96,
                )
            )
            key = (e.tenant_id, AUDIT_SCOPE, day)
            buckets[key] = max(buckets.get(key, 0), ttl)
        return writes + bucket_writes(self._runner, buckets)

    def dead_letters(self, letters: Sequence[DeadLetter], now_us: int) -> list[RowWrite]:
        """One dead-letter row per letter, and the index rows of their days."""
        writes: list[RowWrite] = []
        buckets: dict[tuple[str, str, int], int] = {}
        for d in letters:
            ttl = self._ttl(d.tenant_id, d.dead_at_us, now_us)
            if ttl is None:
                continue
            day = day_bucket(d.dead_at_us)
            writes.append(
                RowWrite(
                    partition=("dlq", d.tenant_id, day),
                    statement=self._runner.bind(
                        "insert_dlq",
                        (
                            d.tenant_id,
                            day,
                            d.dead_at_us,
                            d.notification_id,
                            d.user_id,
                            d.channel,
                            d.reason,
                            d.attempts,
                            d.last_error,
                            d.trace_id,
                            to_us(d.created_at),
                            d.dead_at_us,
                            ttl,
                        ),
                    ),
                    size=len(d.last_error or "") + len(d.reason) + 128,
                )
            )
            key = (d.tenant_id, DLQ_SCOPE, day)
            buckets[key] = max(buckets.get(key, 0), ttl)
        return writes + bucket_writes(self._runner, buckets)
