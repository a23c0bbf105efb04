"""The Trio bridge around cassandra-driver, against a real Cassandra 5.0 node."""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import trio
import trio.testing
from cassandra import InvalidRequest
from cassandra.query import BatchStatement, SimpleStatement

from infra.local.cassandra_server import CassandraContact
from notifactor.adapters.cassandra_session import (
    RECONNECT_BASE_DELAY_S,
    RECONNECT_MAX_DELAY_S,
    CassandraSession,
    connect_cassandra,
)

pytestmark = pytest.mark.integration

ROWS = 250


async def _fill(session: CassandraSession, rows: int) -> None:
    await session.execute(
        "CREATE TABLE items (tenant text, seq int, body text, PRIMARY KEY (tenant, seq))"
    )
    insert = await session.prepare("INSERT INTO items (tenant, seq, body) VALUES (?, ?, ?)")
    limiter = trio.CapacityLimiter(50)

    async def write(seq: int) -> None:
        async with limiter:
            await session.execute(insert, ("acme", seq, f"body-{seq}"))

    async with trio.open_nursery() as nursery:
        for seq in range(rows):
            nursery.start_soon(write, seq)


async def test_keyspace_table_and_prepared_writes(cassandra_contact: CassandraContact) -> None:
    contact = [(cassandra_contact.host, cassandra_contact.port)]
    async with await connect_cassandra(contact) as session:
        await session.execute(
            "CREATE KEYSPACE bridge_ks WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        try:
            await session.execute(
                "CREATE TABLE bridge_ks.kv (k text PRIMARY KEY, v int, tags set<text>)"
            )
            upsert = await session.prepare("INSERT INTO bridge_ks.kv (k, v, tags) VALUES (?, ?, ?)")
            assert await session.prepare(
                "INSERT INTO bridge_ks.kv (k, v, tags) VALUES (?, ?, ?)"
            ) is (upsert)
            assert await session.execute(upsert, ("a", 1, {"x"})) == []
            await session.execute(upsert, {"k": "b", "v": 2, "tags": None})

            batch = BatchStatement()
            batch.add(upsert, ("c", 3, {"y", "z"}))
            batch.add(SimpleStatement("DELETE FROM bridge_ks.kv WHERE k = %s"), ("a",))
            await session.execute(batch)

            rows = await session.execute("SELECT k, v, tags FROM bridge_ks.kv")
            assert sorted((r.k, r.v, r.tags) for r in rows) == [
                ("b", 2, None),
                ("c", 3, {"y", "z"}),
            ]
            assert session.driver_session.keyspace is None
        finally:
            await session.execute("DROP KEYSPACE bridge_ks")


async def test_paging_state_covers_every_row_once_in_order(
    cassandra_session: CassandraSession,
) -> None:
    await _fill(cassandra_session, ROWS)
    select = await cassandra_session.prepare("SELECT seq FROM items WHERE tenant = ?")

    for query, params in (
        (select, ("acme",)),
        ("SELECT seq FROM items WHERE tenant = %s", ("acme",)),
    ):
        seen: list[int] = []
        pages = 0
        paging_state: bytes | None = None
        while True:
            rows, paging_state = await cassandra_session.execute_page(
                query, params, fetch_size=40, paging_state=paging_state
            )
            pages += 1
            assert len(rows) <= 40
            seen.extend(row.seq for row in rows)
            if paging_state is None:
                break
        assert seen == list(range(ROWS))
        assert pages in (math.ceil(ROWS / 40), math.ceil(ROWS / 40) + 1)


async def test_execute_returns_rows_of_every_page(cassandra_session: CassandraSession) -> None:
    await _fill(cassandra_session, ROWS)
    statement = SimpleStatement("SELECT seq FROM items WHERE tenant = 'acme'", fetch_size=30)
    rows = await cassandra_session.execute(statement)
    assert [row.seq for row in rows] == list(range(ROWS))
    assert statement.fetch_size == 30


async def test_driver_errors_pass_through_unchanged(cassandra_session: CassandraSession) -> None:
    with pytest.raises(InvalidRequest, match="no_such_table"):
        await cassandra_session.execute("SELECT * FROM no_such_table")
    with pytest.raises(InvalidRequest):
        await cassandra_session.prepare("SELECT * FROM no_such_table WHERE k = ?")
    assert await cassandra_session.execute("SELECT release_version FROM system.local")


async def test_cancelled_execute_leaves_session_usable(
    cassandra_session: CassandraSession,
) -> None:
    await _fill(cassandra_session, 50)
    completed = 0

    async def read_everything() -> None:
        nonlocal completed
        await cassandra_session.execute("SELECT * FROM items")
        completed += 1

    for _ in range(20):
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_everything)
                await trio.testing.wait_all_tasks_blocked()  # request sent, awaiting reply
                scope.cancel()
    assert completed < 20  # at least some requests were really cut off in flight

    rows = await cassandra_session.execute("SELECT count(*) FROM items")
    assert rows[0].count == 50


def test_late_callback_after_trio_run_ended_is_harmless(
    cassandra_contact: CassandraContact,
    cassandra_keyspace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The driver answers abandoned requests after their Trio run has ended;
    # its callback must neither raise in the driver thread nor poison the
    # session for the next run.
    contact = [(cassandra_contact.host, cassandra_contact.port)]
    session = trio.run(lambda: connect_cassandra(contact, keyspace=cassandra_keyspace))
    try:

        async def abandon() -> None:
            with trio.CancelScope() as scope:
                scope.cancel()
                await session.execute("SELECT * FROM system_schema.columns")

        with caplog.at_level(logging.WARNING, logger="cassandra"):
            for _ in range(5):
                trio.run(abandon)
            rows = trio.run(session.execute, "SELECT release_version FROM system.local")
        assert rows[0].release_version.startswith("5.0")
        assert not [r for r in caplog.records if r.name.startswith("cassandra")]
    finally:
        trio.run(session.close)


async def test_requests_use_the_configured_consistency(cassandra_contact: CassandraContact) -> None:
    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT

    session = await connect_cassandra(
        [(cassandra_contact.host, cassandra_contact.port)], consistency="LOCAL_QUORUM"
    )
    try:
        profile = session.driver_session.cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT]
        assert profile.consistency_level == ConsistencyLevel.LOCAL_QUORUM
        # A single replica answers LOCAL_QUORUM (quorum of one).
        assert await session.execute("SELECT release_version FROM system.local")
    finally:
        await session.close()


async def test_unknown_consistency_is_refused(cassandra_contact: CassandraContact) -> None:
    with pytest.raises(ValueError, match="unknown consistency level"):
        await connect_cassandra(
            [(cassandra_contact.host, cassandra_contact.port)], consistency="MOST"
        )


async def test_a_node_that_went_down_is_tried_again_within_seconds_for_good(
    cassandra_contact: CassandraContact,
) -> None:
    """Not the driver's default: pauses growing to 600 s, and giving up after 64 tries."""
    session = await connect_cassandra([(cassandra_contact.host, cassandra_contact.port)])
    try:
        policy = session.driver_session.cluster.reconnection_policy
        pauses = list(itertools.islice(policy.new_schedule(), 500))
    finally:
        await session.close()
    assert len(pauses) == 500  # still trying after hundreds of tries
    assert pauses[0] <= RECONNECT_BASE_DELAY_S * 1.15
    assert max(pauses) <= RECONNECT_MAX_DELAY_S * 1.15  # the driver adds up to 15 % jitter
