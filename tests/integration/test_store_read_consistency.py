"""What readers see on both real stores (SQLite file, Cassandra node): attempts never
go backwards, and a record past its retention is neither written nor read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from infra.local.cassandra_server import CassandraContact
from notifactor.adapters.cassandra_session import connect_cassandra
from notifactor.adapters.cassandra_store import CassandraNotificationStore
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.domain.audit import AuditEvent
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import STORED_ATTEMPTS, DeliveryState
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.ports.notification_store import NotificationStore
from tests.cassandra_keyspaces import migrated_keyspace

pytestmark = pytest.mark.integration

RETENTION_DAYS = 2


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def notification(tenant_id: str, at: datetime, user_id: str = "u") -> Notification:
    return Notification(
        tenant_id=tenant_id,
        id=uuid.uuid4().hex,
        user_id=user_id,
        channel="c",
        content="x",
        created_at=at,
    )


def update(
    n: Notification, state: DeliveryState, at: datetime, *, attempts: int = 0
) -> DeliveryUpdate:
    """``attempts=0`` is what the WebSocket edge writes with ``delivered``/``acked``."""
    return DeliveryUpdate(
        tenant_id=n.tenant_id,
        notification_id=n.id,
        recipient_id=n.user_id,
        created_at=n.created_at,
        state=state,
        event_time=at,
        attempts=attempts,
    )


@pytest.fixture(scope="module")
def read_keyspace(request: pytest.FixtureRequest) -> Iterator[tuple[CassandraContact, str]]:
    contact: CassandraContact = request.getfixturevalue("cassandra_contact")
    with migrated_keyspace(contact, "reads") as keyspace:
        yield contact, keyspace


@pytest.fixture(params=["sqlite", "cassandra"])
def backend(request: pytest.FixtureRequest) -> tuple[CassandraContact, str] | None:
    """``None`` for SQLite; sync, so that Cassandra is set up outside the Trio run."""
    if request.param == "sqlite":
        return None
    contact, keyspace = request.getfixturevalue("read_keyspace")
    return contact, keyspace


@pytest.fixture
async def store(
    backend: tuple[CassandraContact, str] | None, tmp_path: Path
) -> AsyncIterator[NotificationStore]:
    opened: SqliteNotificationStore | CassandraNotificationStore
    if backend is None:
        opened = await SqliteNotificationStore.open(tmp_path / "store.db", _retention)
    else:
        contact, keyspace = backend
        session = await connect_cassandra([(contact.host, contact.port)], keyspace=keyspace)
        opened = await CassandraNotificationStore.open(
            session, keyspace, _retention, owns_session=True
        )
    try:
        yield opened
    finally:
        with trio.CancelScope(shield=True):
            await opened.aclose()


def _retention(_tenant_id: str) -> int:
    return RETENTION_DAYS


async def attempts_seen(store: NotificationStore, n: Notification) -> list[int]:
    """Attempts as GET, the tenant's listing and the user's listing show them."""
    view = await store.get_notification(n.tenant_id, n.id)
    assert view is not None
    tenant_page = await store.list_deliveries(n.tenant_id)
    user_page = await store.list_deliveries(n.tenant_id, user_id=n.user_id)
    [in_tenant] = [r for r in tenant_page.items if r.notification_id == n.id]
    [in_user] = [r for r in user_page.items if r.notification_id == n.id]
    return [view.attempts, in_tenant.attempts, in_user.attempts]


async def test_delivered_and_acked_from_the_edge_never_lower_the_attempts(
    store: NotificationStore,
) -> None:
    tenant = new_tenant()
    now = datetime.now(UTC)
    n = notification(tenant, now - timedelta(minutes=1))
    await store.save_notifications([n])
    assert await attempts_seen(store, n) == [STORED_ATTEMPTS] * 3
    await store.apply_delivery_updates([update(n, DeliveryState.DELIVERED, now)])
    assert await attempts_seen(store, n) == [STORED_ATTEMPTS] * 3
    await store.apply_delivery_updates([update(n, DeliveryState.ACKED, now + timedelta(seconds=1))])
    view = await store.get_notification(tenant, n.id)
    assert view is not None
    assert view.status is DeliveryState.ACKED
    assert await attempts_seen(store, n) == [STORED_ATTEMPTS] * 3


async def test_attempts_of_retries_survive_a_later_delivered(store: NotificationStore) -> None:
    tenant = new_tenant()
    now = datetime.now(UTC)
    n = notification(tenant, now - timedelta(minutes=1))
    await store.save_notifications([n])
    await store.apply_delivery_updates([update(n, DeliveryState.RETRYING, now, attempts=3)])
    await store.apply_delivery_updates(
        [update(n, DeliveryState.DELIVERED, now + timedelta(seconds=1))]
    )
    assert await attempts_seen(store, n) == [3, 3, 3]


def _audit(tenant: str, at: datetime) -> AuditEvent:
    return AuditEvent(
        tenant_id=tenant, event_id=uuid.uuid4().hex, event_time=at, event_type="sent", metadata={}
    )


def _dead(n: Notification, at: datetime) -> DeadLetter:
    return DeadLetter(
        tenant_id=n.tenant_id,
        notification_id=n.id,
        user_id=n.user_id,
        channel=n.channel,
        reason="max_attempts",
        attempts=5,
        last_error="refused",
        trace_id=None,
        dead_at=at,
        created_at=n.created_at,
    )


async def test_a_replay_past_its_retention_writes_nothing(store: NotificationStore) -> None:
    tenant = new_tenant()
    past = datetime.now(UTC) - timedelta(days=RETENTION_DAYS, seconds=1)
    old = notification(tenant, past)
    await store.save_notifications([old])
    await store.apply_delivery_updates([update(old, DeliveryState.DELIVERED, past)])
    await store.append_audit([_audit(tenant, past)])
    await store.record_dead_letters([_dead(old, past)])
    assert await store.get_notification(tenant, old.id) is None
    assert (await store.list_deliveries(tenant)).items == ()
    assert (await store.list_deliveries(tenant, user_id=old.user_id)).items == ()
    assert await store.inbox_after(tenant, old.user_id, None, 10) == []
    assert (await store.list_audit(tenant)).items == ()
    assert (await store.list_dead_letters(tenant)).items == ()
    assert await store.purge_expired() == 0  # nothing was written to purge


async def test_a_record_is_not_read_once_its_retention_ended(store: NotificationStore) -> None:
    """Without waiting for a sweep (SQLite) or compaction (Cassandra)."""
    tenant = new_tenant()
    soon = datetime.now(UTC) - timedelta(days=RETENTION_DAYS) + timedelta(seconds=1.5)
    n = notification(tenant, soon)
    await store.save_notifications([n])
    await store.append_audit([_audit(tenant, soon)])
    await store.record_dead_letters([_dead(n, soon)])
    assert await store.get_notification(tenant, n.id) is not None
    with trio.fail_after(10):
        while await store.get_notification(tenant, n.id) is not None:  # noqa: ASYNC110
            await trio.sleep(0.1)
    assert (await store.list_deliveries(tenant)).items == ()
    assert (await store.list_deliveries(tenant, user_id=n.user_id)).items == ()
    assert await store.inbox_after(tenant, n.user_id, None, 10) == []
    assert (await store.list_audit(tenant)).items == ()
    assert (await store.list_dead_letters(tenant)).items == ()
