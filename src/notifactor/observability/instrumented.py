"""Decorators over the ports that time every round trip: storage and Redis ingest.

``bootstrap`` wraps the real adapters in these, so every role measures the
same thing without the adapters importing prometheus-client. The wrappers
implement the ports exactly and add nothing else: errors, cancellation and
return values pass through untouched.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from notifactor.domain.audit import AuditEvent
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.envelope import Envelope
from notifactor.domain.notification import (
    DeliveryRecord,
    DeliveryUpdate,
    InboxEntry,
    Notification,
    NotificationView,
)
from notifactor.domain.page import Page
from notifactor.domain.rate_limit import RateRule
from notifactor.observability.metrics import (
    REDIS_INGEST_DURATION,
    STORAGE_DURATION,
    STORAGE_WRITE_ITEMS,
)
from notifactor.ports.ingest import IngestBus, IngestItem, IngestResult
from notifactor.ports.notification_store import NotificationStore, TransientStoreError


@asynccontextmanager
async def _timed_store_call(operation: str) -> AsyncIterator[None]:
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except TransientStoreError:
        outcome = "transient"
        raise
    finally:
        STORAGE_DURATION.labels(operation=operation, outcome=outcome).observe(
            time.perf_counter() - started
        )


class InstrumentedStore:
    """A :class:`NotificationStore` that observes ``storage_operation_duration_seconds``.

    Write calls also observe ``storage_write_batch_items`` (the batches the
    storage writer sends). A call cancelled midway counts as ``error``.
    """

    def __init__(self, inner: NotificationStore) -> None:
        self.inner = inner

    async def save_notifications(self, notifications: Sequence[Notification]) -> None:
        STORAGE_WRITE_ITEMS.labels(operation="save_notifications").observe(len(notifications))
        async with _timed_store_call("save_notifications"):
            await self.inner.save_notifications(notifications)

    async def apply_delivery_updates(self, updates: Sequence[DeliveryUpdate]) -> None:
        STORAGE_WRITE_ITEMS.labels(operation="apply_delivery_updates").observe(len(updates))
        async with _timed_store_call("apply_delivery_updates"):
            await self.inner.apply_delivery_updates(updates)

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        STORAGE_WRITE_ITEMS.labels(operation="append_audit").observe(len(events))
        async with _timed_store_call("append_audit"):
            await self.inner.append_audit(events)

    async def record_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        STORAGE_WRITE_ITEMS.labels(operation="record_dead_letters").observe(len(letters))
        async with _timed_store_call("record_dead_letters"):
            await self.inner.record_dead_letters(letters)

    async def get_notification(
        self, tenant_id: str, notification_id: str
    ) -> NotificationView | None:
        async with _timed_store_call("get_notification"):
            return await self.inner.get_notification(tenant_id, notification_id)

    async def list_deliveries(
        self,
        tenant_id: str,
        *,
        user_id: str | None = None,
        state: DeliveryState | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DeliveryRecord]:
        async with _timed_store_call("list_deliveries"):
            return await self.inner.list_deliveries(
                tenant_id,
                user_id=user_id,
                state=state,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )

    async def inbox_after(
        self, tenant_id: str, user_id: str, cursor: str | None, limit: int
    ) -> list[InboxEntry]:
        async with _timed_store_call("inbox_after"):
            return await self.inner.inbox_after(tenant_id, user_id, cursor, limit)

    async def list_audit(
        self,
        tenant_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        async with _timed_store_call("list_audit"):
            return await self.inner.list_audit(
                tenant_id, since=since, until=until, limit=limit, cursor=cursor
            )

    async def list_dead_letters(
        self,
        tenant_id: str,
        *,
        reason: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DeadLetter]:
        async with _timed_store_call("list_dead_letters"):
            return await self.inner.list_dead_letters(
                tenant_id, reason=reason, since=since, until=until, limit=limit, cursor=cursor
            )

    async def purge_expired(self, now: datetime | None = None) -> int:
        async with _timed_store_call("purge_expired"):
            return await self.inner.purge_expired(now)

    async def ping(self) -> None:
        async with _timed_store_call("ping"):
            await self.inner.ping()

    async def aclose(self) -> None:
        await self.inner.aclose()


# The two series of every ingest call, looked up once instead of per call.
_INGEST_OK = REDIS_INGEST_DURATION.labels(outcome="ok")
_INGEST_ERROR = REDIS_INGEST_DURATION.labels(outcome="error")


class InstrumentedIngest:
    """An :class:`IngestBus` that observes ``redis_ingest_duration_seconds`` per ingest call."""

    def __init__(self, inner: IngestBus) -> None:
        self.inner = inner

    async def ingest(
        self,
        tenant_id: str,
        rule: RateRule,
        items: Sequence[IngestItem],
        *,
        now_us: int | None = None,
    ) -> IngestResult:
        started = time.perf_counter()
        series = _INGEST_ERROR
        try:
            result = await self.inner.ingest(tenant_id, rule, items, now_us=now_us)
            series = _INGEST_OK
            return result
        finally:
            series.observe(time.perf_counter() - started)

    async def get_accepted(self, tenant_id: str, notification_id: str) -> Envelope | None:
        return await self.inner.get_accepted(tenant_id, notification_id)

    async def ping(self) -> None:
        await self.inner.ping()
