"""Retention at its bounds on a real SQLite file: the longest allowed retention writes
and reads; a failed write never leaves the connection in a transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.domain.audit import AuditEvent
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.domain.retention import MAX_RETENTION_DAYS
from notifactor.ports.notification_store import NotificationStore

pytestmark = pytest.mark.integration


def retention(tenant_id: str) -> int:
    if tenant_id.startswith("longest-"):
        return MAX_RETENTION_DAYS
    if tenant_id.startswith("broken-"):
        return 10**9  # past what the configuration allows: its writes fail
    return 30


def new_tenant(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def notification(tenant_id: str, at: datetime) -> Notification:
    return Notification(
        tenant_id=tenant_id,
        id=uuid.uuid4().hex,
        user_id="u",
        channel="c",
        content="x",
        created_at=at,
    )


async def test_the_longest_allowed_retention_writes_and_reads(tmp_path: Path) -> None:
    # SQLite only: a Cassandra node that keeps the 4.x storage format refuses
    # any expiry past 2038-01-19, which is sooner than the longest retention.
    store = await SqliteNotificationStore.open(tmp_path / "store.db", retention)
    try:
        await _write_and_read_at_the_longest_retention(store)
    finally:
        await store.aclose()


async def _write_and_read_at_the_longest_retention(store: NotificationStore) -> None:
    tenant = new_tenant("longest")
    now = datetime.now(UTC)
    n = notification(tenant, now)
    await store.save_notifications([n])
    await store.apply_delivery_updates(
        [
            DeliveryUpdate(
                tenant_id=tenant,
                notification_id=n.id,
                recipient_id="u",
                created_at=n.created_at,
                state=DeliveryState.DELIVERED,
                event_time=now + timedelta(seconds=1),
                attempts=1,
            )
        ]
    )
    await store.append_audit(
        [
            AuditEvent(
                tenant_id=tenant,
                event_id=uuid.uuid4().hex,
                event_time=now,
                event_type="sent",
                metadata={},
            )
        ]
    )
    view = await store.get_notification(tenant, n.id)
    assert view is not None
    assert view.status is DeliveryState.DELIVERED
    page = await store.list_deliveries(tenant)
    assert [r.notification_id for r in page.items] == [n.id]
    assert len((await store.list_audit(tenant)).items) == 1


async def test_a_write_that_fails_inside_its_transaction_leaves_the_store_usable(
    tmp_path: Path,
) -> None:
    store = await SqliteNotificationStore.open(tmp_path / "store.db", retention)
    try:
        now = datetime.now(UTC)
        ok = new_tenant("ok")
        await store.save_notifications([notification(ok, now)])
        with pytest.raises(OverflowError):  # the expiry does not fit an SQLite integer
            await store.save_notifications([notification(new_tenant("broken"), now)])
        # The failed batch was rolled back: the next ones (other tenants) commit.
        later = [notification(ok, now + timedelta(seconds=i)) for i in range(1, 3)]
        for n in later:
            await store.save_notifications([n])
            assert await store.get_notification(ok, n.id) is not None
    finally:
        await store.aclose()
