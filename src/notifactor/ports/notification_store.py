"""The storage port: everything the platform persists and reads back.

Two adapters implement it and pass one contract suite
(``tests/integration/test_store_contract.py``): Cassandra for production and
embedded SQLite for ``notifactor serve``.

Guarantees every implementation gives:

* Writes are idempotent and order-independent: the same records written any
  number of times, in any order, give the same rows. Delivery states merge by
  :func:`notifactor.domain.delivery_state.merge`; no write reads first.
* Every read is scoped to ``tenant_id``; no query returns another tenant's rows.
* Listings are keyset-paged with opaque cursors; following ``next_cursor``
  visits every row exactly once.
* Rows expire after the tenant's retention, counted from the record's own time.
  The retention in force now wins: reads and writes treat a record older than
  it as expired whatever expiry it was written with (a raise does not extend
  rows already written).
* Errors a retry may cure are raised as :class:`TransientStoreError`; every
  other failure as :class:`StoreError` (or a subclass).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from notifactor.domain.audit import AuditEvent
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import (
    DeliveryRecord,
    DeliveryUpdate,
    InboxEntry,
    Notification,
    NotificationView,
)
from notifactor.domain.page import Page

#: Largest page any listing returns (SPEC §4: ``limit`` 1..500).
MAX_PAGE_LIMIT = 500


class StoreError(Exception):
    """Storage failed in a way a retry will not cure (bad query, schema, data)."""


class TransientStoreError(StoreError):
    """Storage failed in a way a retry may cure: timeout, unavailable, busy, locked."""


class RetentionPolicy(Protocol):
    """Tells a store how many days to keep a tenant's rows (``retention_days``)."""

    def __call__(self, tenant_id: str, /) -> int: ...


class NotificationStore(Protocol):
    """Durable notifications, delivery statuses, inboxes, audit log and dead letters."""

    async def save_notifications(self, notifications: Sequence[Notification]) -> None:
        """Persist notifications (and their inbox and history rows). Idempotent."""
        ...

    async def apply_delivery_updates(self, updates: Sequence[DeliveryUpdate]) -> None:
        """Merge delivery-state events into the stored statuses, in any order. Idempotent."""
        ...

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Persist audit events. Idempotent by ``(tenant_id, event_id)``."""
        ...

    async def record_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Index dead letters for the admin API. Idempotent by ``(tenant_id, notification_id)``."""
        ...

    async def get_notification(
        self, tenant_id: str, notification_id: str
    ) -> NotificationView | None:
        """The notification with its status, or ``None`` if it is not this tenant's."""
        ...

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
        """Deliveries newest first by creation time; ``since`` inclusive, ``until`` exclusive.

        Raises:
            InvalidCursorError: ``cursor`` is not a deliveries cursor.
            ValueError: ``limit`` is outside 1..500.
        """
        ...

    async def inbox_after(
        self, tenant_id: str, user_id: str, cursor: str | None, limit: int
    ) -> list[InboxEntry]:
        """The user's stored notifications after ``cursor``, oldest first (WebSocket resume).

        ``cursor=None`` starts at the oldest retained notification. Pass the
        last entry's ``cursor`` to continue.
        """
        ...

    async def list_audit(
        self,
        tenant_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        """Audit events newest first."""
        ...

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
        """Dead letters newest first, optionally only those with ``reason``."""
        ...

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete rows past their retention; returns how many (0 where the store expires them itself)."""
        ...

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the store answers a trivial query."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads. Idempotent."""
        ...


def check_limit(limit: int) -> int:
    """``limit`` if it is within 1..:data:`MAX_PAGE_LIMIT`, else ``ValueError``."""
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_PAGE_LIMIT}, got {limit}")
    return limit
