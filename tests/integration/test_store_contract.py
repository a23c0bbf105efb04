"""One contract, two stores: SQLite (tmp file) and Cassandra (real node), same tests.

Each test uses fresh tenant ids, so the Cassandra tests of this module share
one keyspace (created and migrated once) without seeing each other's rows.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.local.cassandra_server import CassandraContact
from notifactor.actors import ActorRef, StopSignal, run_actor
from notifactor.actors.stop import set_stop_signal
from notifactor.actors.storage_writer import (
    StorageWriter,
    StorageWriterClient,
    StorageWriterConfig,
    WriterMessage,
    kind_only,
)
from notifactor.adapters.cassandra_session import CassandraSession, connect_cassandra
from notifactor.adapters.cassandra_store import CassandraNotificationStore
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.domain.audit import AuditEvent
from notifactor.domain.batching import BatchPolicy, RetryPolicy
from notifactor.domain.cursor import InvalidCursorError, cursor_for, inbox_cursor
from notifactor.domain.dead_letter import DeadLetter
from notifactor.domain.delivery_state import DeliveryState, DeliveryStatus, attempts_read, merge
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.domain.timestamps import to_us
from notifactor.ports.notification_store import NotificationStore
from tests.cassandra_keyspaces import migrated_keyspace as keyspace_with_schema

pytestmark = pytest.mark.integration

RETENTION_DAYS = 30
SHORT_RETENTION_DAYS = 2
NOW = datetime.now(UTC).replace(microsecond=0)


#: Retention a test sets for its own tenant while the store is open: an
#: operator changing ``retention_days`` (the store asks the policy every call).
RETENTION_CHANGES: dict[str, int] = {}


def retention(tenant_id: str) -> int:
    if tenant_id in RETENTION_CHANGES:
        return RETENTION_CHANGES[tenant_id]
    return SHORT_RETENTION_DAYS if tenant_id.startswith("short-") else RETENTION_DAYS


def new_tenant(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


_ids = itertools.count()


def new_id(at: datetime) -> str:
    """A time-ordered id (like UUIDv7's text form: the time first, fixed width)."""
    return f"{to_us(at):016x}-{next(_ids):08x}-{uuid.uuid4().hex[:8]}"


def make_notification(
    tenant_id: str, user_id: str, at: datetime, *, channel: str = "alerts", content: str = "hi"
) -> Notification:
    return Notification(
        tenant_id=tenant_id,
        id=new_id(at),
        user_id=user_id,
        channel=channel,
        content=content,
        priority="high",
        metadata={"k": [1, "two"], "deep": {"x": None}},
        created_at=at,
    )


def update(
    n: Notification,
    state: DeliveryState,
    at: datetime,
    *,
    attempts: int = 0,
    error: str | None = None,
) -> DeliveryUpdate:
    return DeliveryUpdate(
        tenant_id=n.tenant_id,
        notification_id=n.id,
        recipient_id=n.user_id,
        created_at=n.created_at,
        state=state,
        event_time=at,
        attempts=attempts,
        last_error=error,
    )


@pytest.fixture(scope="module")
def store_keyspace(request: pytest.FixtureRequest) -> Iterator[tuple[CassandraContact, str]]:
    """A keyspace migrated once for this module (only when a Cassandra test runs)."""
    contact: CassandraContact = request.getfixturevalue("cassandra_contact")
    with keyspace_with_schema(contact, "store") as keyspace:
        yield contact, keyspace


@pytest.fixture(params=["sqlite", "cassandra"])
def backend(request: pytest.FixtureRequest) -> tuple[str, CassandraContact | None, str | None]:
    """Which store to test; sync, so that Cassandra is set up outside the Trio run."""
    if request.param == "sqlite":
        return ("sqlite", None, None)
    contact, keyspace = request.getfixturevalue("store_keyspace")
    return ("cassandra", contact, keyspace)


@pytest.fixture
async def cassandra_store_session(
    backend: tuple[str, CassandraContact | None, str | None],
) -> AsyncIterator[CassandraSession | None]:
    _, contact, keyspace = backend
    if contact is None:
        yield None
        return
    session = await connect_cassandra([(contact.host, contact.port)], keyspace=keyspace)
    async with session:
        yield session


@pytest.fixture
async def store(
    backend: tuple[str, CassandraContact | None, str | None],
    cassandra_store_session: CassandraSession | None,
    tmp_path: Path,
) -> AsyncIterator[NotificationStore]:
    opened: SqliteNotificationStore | CassandraNotificationStore
    if cassandra_store_session is None:
        opened = await SqliteNotificationStore.open(tmp_path / "store.db", retention)
    else:
        assert backend[2] is not None
        opened = await CassandraNotificationStore.open(
            cassandra_store_session, backend[2], retention
        )
    try:
        yield opened
    finally:
        await opened.aclose()


async def test_saved_notification_reads_back_as_pending(store: NotificationStore) -> None:
    """Stored and no status written yet: ``pending`` (SPEC §4), after one attempt."""
    tenant = new_tenant()
    n = make_notification(tenant, "user-1", NOW - timedelta(minutes=5), content="Deploy ✓")
    await store.save_notifications([n])
    view = await store.get_notification(tenant, n.id)
    assert view is not None
    assert view.notification == n
    assert view.status is DeliveryState.PENDING
    assert (view.attempts, view.last_error, view.updated_at) == (1, None, n.created_at)
    assert await store.get_notification(tenant, "no-such-id") is None
    await store.ping()


async def test_replays_change_nothing(store: NotificationStore) -> None:
    tenant = new_tenant()
    notes = [make_notification(tenant, "u", NOW - timedelta(seconds=i)) for i in range(5)]
    updates = [update(n, DeliveryState.PENDING, NOW, attempts=1) for n in notes]
    for _ in range(3):
        await store.save_notifications(notes)
        await store.apply_delivery_updates(updates)
    page = await store.list_deliveries(tenant, limit=500)
    assert sorted(r.notification_id for r in page.items) == sorted(n.id for n in notes)
    assert {r.state for r in page.items} == {DeliveryState.PENDING}
    assert page.next_cursor is None
    inbox = await store.inbox_after(tenant, "u", None, 500)
    assert [e.notification.id for e in inbox] == [n.id for n in reversed(notes)]


async def test_states_only_move_forward(store: NotificationStore) -> None:
    tenant = new_tenant()
    n = make_notification(tenant, "u", NOW - timedelta(minutes=1))
    await store.save_notifications([n])
    t = n.created_at
    await store.apply_delivery_updates([update(n, DeliveryState.ACKED, t + timedelta(seconds=3))])
    await store.apply_delivery_updates(
        [
            update(n, DeliveryState.RETRYING, t + timedelta(seconds=9), attempts=3, error="boom"),
            update(n, DeliveryState.PENDING, t + timedelta(seconds=1)),
        ]
    )
    view = await store.get_notification(tenant, n.id)
    assert view is not None
    assert view.status is DeliveryState.ACKED
    assert view.attempts == 3  # max-merged independently of the state
    assert view.last_error is None
    assert view.updated_at == t + timedelta(seconds=3)


async def test_inbox_entries_carry_when_their_state_was_reached(store: NotificationStore) -> None:
    """What a resume's look back compares: the winning state's time, none while only stored."""
    tenant = new_tenant()
    stored, written, acked = (
        make_notification(tenant, "u", NOW - timedelta(minutes=m)) for m in (3, 2, 1)
    )
    await store.save_notifications([stored, written, acked])
    await store.apply_delivery_updates(
        [
            update(written, DeliveryState.DELIVERED, NOW + timedelta(seconds=5)),
            update(acked, DeliveryState.DELIVERED, NOW + timedelta(seconds=6)),
            update(acked, DeliveryState.ACKED, NOW + timedelta(seconds=8)),
        ]
    )
    inbox = await store.inbox_after(tenant, "u", None, 10)
    assert [(e.notification.id, e.state, e.state_at_us) for e in inbox] == [
        (stored.id, DeliveryState.PENDING, None),
        (written.id, DeliveryState.DELIVERED, to_us(NOW + timedelta(seconds=5))),
        (acked.id, DeliveryState.ACKED, to_us(NOW + timedelta(seconds=8))),
    ]


_STATES = st.sampled_from(list(DeliveryState))


@asynccontextmanager
async def open_store(
    backend: tuple[str, CassandraContact | None, str | None], tmp_path: Path
) -> AsyncIterator[NotificationStore]:
    """A store of ``backend`` in a Trio run of its own (for Hypothesis examples)."""
    _, contact, keyspace = backend
    if contact is None or keyspace is None:
        store = await SqliteNotificationStore.open(tmp_path / "examples.db", retention)
        try:
            yield store
        finally:
            await store.aclose()
        return
    session = await connect_cassandra([(contact.host, contact.port)], keyspace=keyspace)
    async with session:
        yield await CassandraNotificationStore.open(session, keyspace, retention)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(
        st.tuples(
            _STATES,
            st.integers(0, 5),
            st.integers(0, 3),
            st.sampled_from([None, "timeout", "refused"]),
        ),
        min_size=1,
        max_size=6,
    ),
    rng=st.randoms(use_true_random=False),
)
def test_out_of_order_updates_converge(
    backend: tuple[str, CassandraContact | None, str | None],
    tmp_path: Path,
    events: list[tuple[DeliveryState, int, int, str | None]],
    rng: random.Random,
) -> None:
    """Any order, any duplication, split over calls, before or after the save: same row."""
    tenant = new_tenant()
    n = make_notification(tenant, "u", NOW - timedelta(hours=1))
    updates = [
        update(n, state, n.created_at + timedelta(seconds=sec), attempts=attempts, error=error)
        for state, sec, attempts, error in events
    ]
    order = updates + updates[: rng.randint(0, 2)]
    rng.shuffle(order)
    cut = rng.randint(0, len(order))
    expected: DeliveryStatus = updates[0].status
    for u in updates[1:]:
        expected = merge(expected, u.status)

    async def check() -> None:
        async with open_store(backend, tmp_path) as store:
            await store.apply_delivery_updates(order[:cut])
            await store.save_notifications([n])
            await store.apply_delivery_updates(order[cut:])
            view = await store.get_notification(tenant, n.id)
            [record] = (await store.list_deliveries(tenant, limit=10)).items
        assert view is not None
        assert view.status is expected.state
        assert view.attempts == attempts_read(expected.attempts)  # storing was an attempt
        assert view.last_error == (expected.last_error or None)
        assert to_us(view.updated_at) == expected.event_time_us
        assert (record.state, record.attempts, record.last_error) == (
            expected.state,
            attempts_read(expected.attempts),
            expected.last_error or None,
        )

    trio.run(check)


async def test_no_query_crosses_tenants(store: NotificationStore) -> None:
    a, b = new_tenant("a"), new_tenant("b")
    na = make_notification(a, "same-user", NOW - timedelta(minutes=2))
    nb = Notification(
        tenant_id=b,
        id=na.id,  # the same id in another tenant
        user_id="same-user",
        channel="alerts",
        content="tenant b's secret",
        created_at=na.created_at,
    )
    await store.save_notifications([na, nb])
    await store.apply_delivery_updates([update(na, DeliveryState.DELIVERED, NOW)])
    await store.append_audit([audit_event(a, "x", NOW), audit_event(b, "y", NOW)])
    await store.record_dead_letters([dead_letter(b, nb, "expired", NOW)])

    view_b = await store.get_notification(b, na.id)
    assert view_b is not None
    assert (view_b.notification.content, view_b.status) == ("tenant b's secret", "pending")
    assert await store.get_notification(new_tenant("c"), na.id) is None
    assert [r.state for r in (await store.list_deliveries(b)).items] == ["pending"]
    assert [r.state for r in (await store.list_deliveries(a, user_id="same-user")).items] == [
        "delivered"
    ]
    assert [e.notification.content for e in await store.inbox_after(b, "same-user", None, 10)] == [
        "tenant b's secret"
    ]
    assert [e.event_type for e in (await store.list_audit(a)).items] == ["x"]
    assert (await store.list_dead_letters(a)).items == ()
    assert len((await store.list_dead_letters(b)).items) == 1


async def test_paging_visits_every_delivery_once_newest_first(store: NotificationStore) -> None:
    tenant = new_tenant()
    notes = []
    for i in range(23):  # over three days, two users
        at = NOW - timedelta(days=i % 3, minutes=i)
        notes.append(make_notification(tenant, f"user-{i % 2}", at))
    await store.save_notifications(notes)
    states = [DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.ACKED]
    await store.apply_delivery_updates(
        [update(n, states[i % 3], NOW, attempts=1) for i, n in enumerate(notes) if i % 4]
    )
    expected_state = {
        n.id: states[i % 3] if i % 4 else DeliveryState.PENDING for i, n in enumerate(notes)
    }
    newest_first = sorted(notes, key=lambda n: (n.created_at, n.id), reverse=True)

    async def walk(limit: int, **filters: object) -> list[str]:
        seen: list[str] = []
        cursor = None
        for _ in range(100):
            page = await store.list_deliveries(tenant, limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
            assert len(page.items) <= limit
            seen.extend(r.notification_id for r in page.items)
            cursor = page.next_cursor
            if cursor is None:
                return seen
        raise AssertionError("paging did not end")

    assert await walk(5) == [n.id for n in newest_first]
    assert await walk(500) == [n.id for n in newest_first]
    assert await walk(4, user_id="user-1") == [n.id for n in newest_first if n.user_id == "user-1"]
    assert await walk(3, state=DeliveryState.ACKED) == [
        n.id for n in newest_first if expected_state[n.id] is DeliveryState.ACKED
    ]
    # Written ``pending`` rows and notifications with no status row alike.
    assert await walk(2, state=DeliveryState.PENDING, user_id="user-0") == [
        n.id
        for n in newest_first
        if expected_state[n.id] is DeliveryState.PENDING and n.user_id == "user-0"
    ]
    since, until = NOW - timedelta(days=1, minutes=30), NOW - timedelta(minutes=3)
    assert await walk(3, since=since, until=until) == [
        n.id for n in newest_first if since <= n.created_at < until
    ]
    page = await store.list_deliveries(tenant, limit=1)
    record = page.items[0]
    assert (record.user_id, record.channel) == (newest_first[0].user_id, "alerts")
    with pytest.raises(InvalidCursorError):
        await store.list_deliveries(tenant, cursor="not-a-cursor")
    with pytest.raises(InvalidCursorError):  # an inbox cursor is not a deliveries cursor
        await store.list_deliveries(tenant, cursor=cursor_for(notes[0]))
    with pytest.raises(ValueError, match="limit"):
        await store.list_deliveries(tenant, limit=501)


async def test_inbox_resumes_after_cursor_in_order(store: NotificationStore) -> None:
    tenant = new_tenant()
    mine = [
        make_notification(tenant, "me", NOW - timedelta(days=d, minutes=m))
        for d in (2, 1, 0)
        for m in (9, 5, 1)
    ]
    others = [make_notification(tenant, "other", NOW - timedelta(minutes=2))]
    await store.save_notifications(list(reversed(mine)) + others)
    ascending = sorted(mine, key=lambda n: (n.created_at, n.id))

    got: list[str] = []
    cursor = None
    while True:
        batch = await store.inbox_after(tenant, "me", cursor, 2)
        if not batch:
            break
        got.extend(e.notification.id for e in batch)
        cursor = batch[-1].cursor
    assert got == [n.id for n in ascending]

    after_third = await store.inbox_after(tenant, "me", cursor_for(ascending[2]), 100)
    assert [e.notification.id for e in after_third] == [n.id for n in ascending[3:]]
    assert after_third[0].notification == ascending[3]
    assert after_third[0].cursor == cursor_for(ascending[3])
    assert await store.inbox_after(tenant, "me", cursor_for(ascending[-1]), 100) == []

    # A cursor at a bare time (what a resume's look back starts from) is
    # before every notification at or after that time, across day buckets.
    one_day_back = to_us(ascending[5].created_at - timedelta(days=1))
    from_time = await store.inbox_after(tenant, "me", inbox_cursor("", one_day_back), 100)
    assert [e.notification.id for e in from_time] == [n.id for n in ascending[2:]]
    at_time = await store.inbox_after(tenant, "me", inbox_cursor("", ascending[4].created_at_us), 2)
    assert [e.notification.id for e in at_time] == [ascending[4].id, ascending[5].id]


async def test_rows_expire_with_tenant_retention(
    store: NotificationStore, cassandra_store_session: CassandraSession | None
) -> None:
    tenant = new_tenant("short")
    n = make_notification(tenant, "u", NOW - timedelta(hours=12))
    await store.save_notifications([n])
    await store.apply_delivery_updates([update(n, DeliveryState.DELIVERED, NOW)])
    await store.append_audit([audit_event(tenant, "sent", NOW)])
    # NOW is fixed when the module loads; the TTL counts from the real clock.
    since_now = int((datetime.now(UTC) - NOW).total_seconds())
    expected_ttl = SHORT_RETENTION_DAYS * 86_400 - 12 * 3600 - since_now
    if isinstance(store, CassandraNotificationStore):
        session = cassandra_store_session
        assert session is not None
        for query in (
            "SELECT TTL(content) AS ttl FROM notifications WHERE tenant_id = %s AND notification_id = %s",
            "SELECT TTL(state) AS ttl FROM delivery_status WHERE tenant_id = %s AND notification_id = %s",
            "SELECT TTL(attempts) AS ttl FROM delivery_status WHERE tenant_id = %s AND notification_id = %s",
        ):
            [row] = await session.execute(query, (tenant, n.id))
            assert expected_ttl - 120 <= row.ttl <= expected_ttl + 1
        # A replay after the retention ended writes nothing.
        old = make_notification(tenant, "u", NOW - timedelta(days=SHORT_RETENTION_DAYS, seconds=1))
        await store.save_notifications([old])
        assert await store.get_notification(tenant, old.id) is None
    else:
        assert await store.purge_expired(NOW) == 0
        assert await store.get_notification(tenant, n.id) is not None
        expiry = n.created_at + timedelta(days=SHORT_RETENTION_DAYS, seconds=1)
        assert await store.purge_expired(expiry) == 2
        assert await store.get_notification(tenant, n.id) is None
        assert (await store.list_audit(tenant)).items != ()


async def test_lowered_retention_hides_older_rows_from_every_read(
    store: NotificationStore,
) -> None:
    """The tenant's current retention wins: rows older than it are gone for every read.

    Written under 30 days, read after the tenant's retention dropped to 2:
    a 3-day-old notification (its status, audit event and dead letter too) is
    no longer served, and a status write for it changes nothing, whatever
    expiry or TTL the rows were written with. A recent one is untouched.
    """
    tenant = new_tenant()
    old = make_notification(tenant, "u", NOW - timedelta(days=3), content="old")
    recent = make_notification(tenant, "u", NOW - timedelta(hours=1), content="recent")
    await store.save_notifications([old, recent])
    await store.apply_delivery_updates([update(old, DeliveryState.RETRYING, NOW, attempts=1)])
    await store.append_audit([audit_event(tenant, "old", old.created_at)])
    await store.append_audit([audit_event(tenant, "recent", recent.created_at)])
    await store.record_dead_letters([dead_letter(tenant, old, "expired", old.created_at)])
    await store.record_dead_letters([dead_letter(tenant, recent, "expired", recent.created_at)])
    assert await store.get_notification(tenant, old.id) is not None
    assert len(await store.inbox_after(tenant, "u", None, 10)) == 2

    RETENTION_CHANGES[tenant] = SHORT_RETENTION_DAYS
    try:
        assert await store.get_notification(tenant, old.id) is None
        assert [e.notification.id for e in await store.inbox_after(tenant, "u", None, 10)] == [
            recent.id
        ]
        assert [r.notification_id for r in (await store.list_deliveries(tenant)).items] == [
            recent.id
        ]
        by_user = await store.list_deliveries(tenant, user_id="u")
        assert [r.notification_id for r in by_user.items] == [recent.id]
        retrying = await store.list_deliveries(tenant, state=DeliveryState.RETRYING)
        assert retrying.items == ()
        assert [e.event_type for e in (await store.list_audit(tenant)).items] == ["recent"]
        letters = await store.list_dead_letters(tenant)
        assert [d.notification_id for d in letters.items] == [recent.id]

        for state in (DeliveryState.DELIVERED, DeliveryState.ACKED):
            await store.apply_delivery_updates([update(old, state, NOW, attempts=1)])
            await store.apply_delivery_updates([update(recent, state, NOW, attempts=1)])
            assert await store.get_notification(tenant, old.id) is None
            view = await store.get_notification(tenant, recent.id)
            assert view is not None
            assert view.status is state
        assert [e.notification.id for e in await store.inbox_after(tenant, "u", None, 10)] == [
            recent.id
        ]
    finally:
        del RETENTION_CHANGES[tenant]


async def test_lowered_retention_is_purged_and_raised_retention_keeps_stored_expiry(
    tmp_path: Path,
) -> None:
    """SQLite's purge applies the current retention; a raise keeps the stored expiry.

    Lowered from 30 to 2 days, a 3-day-old notification, its status, audit
    event and dead letter are deleted by the next purge (not 27 days later,
    when their stored ``expires_us`` passes). Raised from 2 to 30 days, a
    notification written under 2 still leaves when its stored expiry passes.
    """
    store = await SqliteNotificationStore.open(tmp_path / "retention.db", retention)
    try:
        lowered, raised = new_tenant(), new_tenant()
        old = make_notification(lowered, "u", NOW - timedelta(days=3))
        recent = make_notification(lowered, "u", NOW - timedelta(hours=1))
        await store.save_notifications([old, recent])
        await store.apply_delivery_updates([update(old, DeliveryState.RETRYING, NOW)])
        await store.append_audit([audit_event(lowered, "old", old.created_at)])
        await store.record_dead_letters([dead_letter(lowered, old, "expired", old.created_at)])
        RETENTION_CHANGES[raised] = SHORT_RETENTION_DAYS
        kept = make_notification(raised, "u", NOW - timedelta(days=1))
        await store.save_notifications([kept])
        assert await store.purge_expired() == 0

        RETENTION_CHANGES[lowered] = SHORT_RETENTION_DAYS
        RETENTION_CHANGES[raised] = RETENTION_DAYS
        assert await store.purge_expired() == 4  # notification, status, audit, dead letter
        RETENTION_CHANGES[lowered] = RETENTION_DAYS  # raised back: deleted stays deleted
        assert await store.get_notification(lowered, old.id) is None
        assert (await store.list_audit(lowered)).items == ()
        assert (await store.list_dead_letters(lowered)).items == ()
        assert await store.get_notification(lowered, recent.id) is not None

        assert await store.get_notification(raised, kept.id) is not None
        stored_expiry = kept.created_at + timedelta(days=SHORT_RETENTION_DAYS, seconds=1)
        assert await store.purge_expired(stored_expiry - timedelta(minutes=1)) == 0
        assert await store.purge_expired(stored_expiry) == 1
        assert await store.get_notification(raised, kept.id) is None
    finally:
        for tenant in list(RETENTION_CHANGES):
            del RETENTION_CHANGES[tenant]
        await store.aclose()


def audit_event(tenant: str, kind: str, at: datetime) -> AuditEvent:
    return AuditEvent(
        tenant_id=tenant,
        event_id=uuid.uuid4().hex,
        event_time=at,
        event_type=kind,
        metadata={"by": "test"},
    )


def dead_letter(tenant: str, n: Notification, reason: str, at: datetime) -> DeadLetter:
    return DeadLetter(
        tenant_id=tenant,
        notification_id=n.id,
        user_id=n.user_id,
        channel=n.channel,
        reason=reason,
        attempts=5,
        last_error="connection reset",
        trace_id="trace-1",
        dead_at=at,
        created_at=n.created_at,
    )


async def test_audit_log_pages_newest_first(store: NotificationStore) -> None:
    tenant = new_tenant()
    events = [
        audit_event(tenant, f"e{i}", NOW - timedelta(days=i % 2, minutes=i)) for i in range(7)
    ]
    await store.append_audit(events)
    await store.append_audit(events[:3])  # replay
    seen: list[AuditEvent] = []
    cursor: str | None = None
    while True:
        page = await store.list_audit(tenant, limit=3, cursor=cursor)
        seen.extend(page.items)
        if (cursor := page.next_cursor) is None:
            break
    assert seen == sorted(events, key=lambda e: (e.event_time, e.event_id), reverse=True)


async def test_dead_letters_page_with_reason_filter(store: NotificationStore) -> None:
    tenant = new_tenant()
    notes = [make_notification(tenant, "u", NOW - timedelta(hours=i)) for i in range(9)]
    letters = [
        dead_letter(
            tenant, n, "expired" if i % 3 else "rejected", NOW - timedelta(days=i % 2, hours=i)
        )
        for i, n in enumerate(notes)
    ]
    await store.record_dead_letters(letters)
    await store.record_dead_letters(letters)  # replay
    newest_first = sorted(letters, key=lambda d: (d.dead_at, d.notification_id), reverse=True)
    for reason in (None, "rejected"):
        seen: list[DeadLetter] = []
        cursor: str | None = None
        while True:
            page = await store.list_dead_letters(tenant, reason=reason, limit=2, cursor=cursor)
            seen.extend(page.items)
            if (cursor := page.next_cursor) is None:
                break
        assert seen == [d for d in newest_first if reason is None or d.reason == reason]


# -- the writer actor on the real stores -------------------------------------------


async def _run_writer(
    nursery: trio.Nursery,
    store: NotificationStore,
    config: StorageWriterConfig,
) -> tuple[StorageWriterClient, StopSignal]:
    ref: ActorRef[WriterMessage] = ActorRef("storage-writer", mailbox_size=64)
    stop = StopSignal()
    set_stop_signal(stop)  # the writer task inherits it
    partition_key = kind_only if isinstance(store, SqliteNotificationStore) else None
    factory = (
        (lambda: StorageWriter(store, config, partition_key=kind_only))
        if partition_key
        else (lambda: StorageWriter(store, config))
    )
    await nursery.start(run_actor, ref, factory)
    return StorageWriterClient(ref), stop


async def test_writer_returns_once_durable_and_flushes_on_size_and_age(
    store: NotificationStore,
) -> None:
    tenant = new_tenant()
    # The age threshold leaves room for a slow store on a busy machine: a size
    # flush must return well before it.
    config = StorageWriterConfig(batch=BatchPolicy(max_items=10, max_age_s=1.0))
    async with trio.open_nursery() as nursery:
        writer, stop = await _run_writer(nursery, store, config)
        # Size: 10 items flush at once, long before the age threshold.
        notes = [make_notification(tenant, "u", NOW - timedelta(seconds=i)) for i in range(10)]
        with trio.fail_after(0.9):
            await writer.write(notes)
        assert len((await store.list_deliveries(tenant, limit=500)).items) == 10
        # Age: one item waits for max_age_s, then is durable when write returns.
        lone = make_notification(tenant, "u", NOW)
        started = trio.current_time()
        ticket = await writer.submit([lone, update(lone, DeliveryState.PENDING, NOW)])
        await ticket.wait_durable()
        assert trio.current_time() - started >= 1.0
        view = await store.get_notification(tenant, lone.id)
        assert view is not None
        assert view.status is DeliveryState.PENDING
        # Graceful stop flushes what the writer holds.
        last = make_notification(tenant, "u", NOW + timedelta(seconds=1))
        tail = await writer.submit([last])
        stop.request()
        await tail.wait_durable()
    assert await store.get_notification(tenant, last.id) is not None


async def test_writer_retries_a_locked_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = await SqliteNotificationStore.open(path, retention, busy_timeout_ms=10)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    tenant = new_tenant()
    n = make_notification(tenant, "u", NOW)
    config = StorageWriterConfig(
        batch=BatchPolicy(max_items=1, max_age_s=0.01),
        retry=RetryPolicy(max_attempts=100, base_s=0.02, cap_s=0.05),
    )
    try:
        async with trio.open_nursery() as nursery:
            writer, stop = await _run_writer(nursery, store, config)
            ticket = await writer.submit([n])
            await trio.sleep(0.3)
            assert not ticket.done  # still retrying "database is locked"
            blocker.execute("ROLLBACK")
            with trio.fail_after(5):
                await ticket.wait_durable()
            stop.request()
        assert await store.get_notification(tenant, n.id) is not None
    finally:
        blocker.close()
        await store.aclose()
