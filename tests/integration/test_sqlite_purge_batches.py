"""The SQLite retention purge deletes in bounded batches, so writes go on meanwhile."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing

from notifactor.adapters.sqlite_store import SqliteNotificationStore, writes
from notifactor.domain.audit import AuditEvent
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import DeliveryUpdate, Notification

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD = NOW  # tenant "old" keeps rows one day: expired at SWEEP
SWEEP = NOW + timedelta(days=2)
EXPIRED = 3000
BATCH = 250


def retention(tenant_id: str) -> int:
    return 1 if tenant_id == "old" else 30


def notification(tenant: str, i: int, at: datetime) -> Notification:
    return Notification(
        tenant_id=tenant,
        id=f"n{i:06d}",
        user_id=f"u{i % 7}",
        channel="c",
        content="hello",
        created_at=at + timedelta(microseconds=i),
    )


def delivered(n: Notification) -> DeliveryUpdate:
    return DeliveryUpdate(
        tenant_id=n.tenant_id,
        notification_id=n.id,
        recipient_id=n.user_id,
        created_at=n.created_at,
        state=DeliveryState.DELIVERED,
        event_time=n.created_at,
        attempts=1,
    )


async def fill(store: SqliteNotificationStore) -> int:
    """Notifications, statuses and audit events expired at SWEEP; the number of rows."""
    notes = [notification("old", i, OLD) for i in range(EXPIRED)]
    await store.save_notifications(notes)
    await store.apply_delivery_updates([delivered(n) for n in notes])
    events = [
        AuditEvent(
            tenant_id="old",
            event_id=uuid.uuid4().hex,
            event_time=OLD,
            event_type="sent",
            metadata={},
        )
        for _ in range(EXPIRED // 3)
    ]
    await store.append_audit(events)
    return 2 * EXPIRED + len(events)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writes, "PURGE_BATCH_ROWS", BATCH, raising=False)


@pytest.mark.usefixtures("small_batches")
async def test_writes_go_on_while_a_large_purge_runs(tmp_path: Path) -> None:
    store = await SqliteNotificationStore.open(tmp_path / "purge.db", retention)
    try:
        rows = await fill(store)
        live = notification("live", 0, NOW)
        order: list[str] = []
        removed: list[int] = []

        async def purge() -> None:
            removed.append(await store.purge_expired(SWEEP))
            order.append("purge")

        async def write() -> None:
            await store.save_notifications([live])
            order.append("write")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(purge)
            await trio.testing.wait_all_tasks_blocked()  # the purge holds the connection
            nursery.start_soon(write)
        assert order == ["write", "purge"]  # the write did not wait for the whole purge
        assert removed == [rows]
        assert await store.get_notification("live", live.id) is not None
        assert await store.get_notification("old", notification("old", 0, OLD).id) is None
        assert (await store.list_deliveries("old")).items == ()
        assert (await store.list_audit("old")).items == ()
        assert await store.purge_expired(SWEEP) == 0
    finally:
        await store.aclose()


@pytest.mark.usefixtures("small_batches")
async def test_a_purge_counts_every_row_it_removes_across_batches(tmp_path: Path) -> None:
    store = await SqliteNotificationStore.open(tmp_path / "purge.db", retention)
    try:
        rows = await fill(store)
        keep = [notification("live", i, NOW) for i in range(BATCH + 1)]
        await store.save_notifications(keep)
        await store.apply_delivery_updates([delivered(n) for n in keep])
        assert await store.purge_expired(SWEEP) == rows
        page = await store.list_deliveries("live", limit=500)
        assert len(page.items) == len(keep)
    finally:
        await store.aclose()


@pytest.mark.usefixtures("small_batches")
async def test_a_lowered_retention_is_purged_in_batches_with_the_statuses(
    tmp_path: Path,
) -> None:
    """Written under 30 days, reopened under 1: the purge takes them all, batch by batch.

    Their stored expiry is 30 days away; the tenant's retention now decides.
    Each notification leaves with its status, and writes still go on between
    batches.
    """
    path = tmp_path / "lowered.db"
    notes = [notification("shrunk", i, NOW - timedelta(days=2)) for i in range(EXPIRED)]
    keep = [notification("shrunk", EXPIRED + i, NOW) for i in range(BATCH + 1)]
    store = await SqliteNotificationStore.open(path, lambda _tenant: 30)
    try:
        await store.save_notifications(notes + keep)
        await store.apply_delivery_updates([delivered(n) for n in notes + keep])
    finally:
        await store.aclose()
    store = await SqliteNotificationStore.open(path, lambda _tenant: 1)
    try:
        live = notification("live", 0, NOW)
        order: list[str] = []
        removed: list[int] = []

        async def purge() -> None:
            removed.append(await store.purge_expired())
            order.append("purge")

        async def write() -> None:
            await store.save_notifications([live])
            order.append("write")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(purge)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(write)
        assert order == ["write", "purge"]
        assert removed == [2 * EXPIRED]  # every old notification and its status
        page = await store.list_deliveries("shrunk", limit=500)
        assert len(page.items) == len(keep)
        assert all(r.state is DeliveryState.DELIVERED for r in page.items)
        assert await store.purge_expired() == 0
    finally:
        await store.aclose()
