"""The dispatcher on the real Cassandra store: delivered, pending and dead end states."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import coredis
import pytest

from infra.local.cassandra_server import CassandraContact
from notifactor.adapters.cassandra_session import connect_cassandra
from notifactor.adapters.cassandra_store import CassandraNotificationStore
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.dlq_entry import decode_dlq_entry
from tests.cassandra_keyspaces import migrated_keyspace as keyspace_with_schema
from tests.integration.dispatcher_harness import (
    dispatcher_config,
    make_envelope,
    running_dispatcher,
)
from tests.integration.test_dispatcher_failures import FlakyPresence


@pytest.fixture
def migrated_keyspace(
    cassandra_contact: CassandraContact,
) -> Iterator[tuple[CassandraContact, str]]:
    with keyspace_with_schema(cassandra_contact, "dispatch") as keyspace:
        yield cassandra_contact, keyspace


async def test_dispatcher_on_cassandra_ends_every_notification(
    redis_client: coredis.Redis[bytes],
    redis_prefix: str,
    migrated_keyspace: tuple[CassandraContact, str],
) -> None:
    contact, keyspace = migrated_keyspace
    session = await connect_cassandra([(contact.host, contact.port)], keyspace=keyspace)
    flaky: list[FlakyPresence] = []

    def wrap(deps: Any) -> Any:
        flaky.append(FlakyPresence(deps.presence, failures=0))
        return attrs.evolve(deps, presence=flaky[0])

    config = dispatcher_config(max_attempts=2, base_ms=10, cap_ms=20)
    async with session:
        store = await CassandraNotificationStore.open(session, keyspace, lambda _t: 30)
        try:
            async with running_dispatcher(
                redis_client, store, redis_prefix, config=config, wrap=wrap
            ) as h:
                await h.presence.register("tenant-a", "online", "gw-1")
                online = [make_envelope("tenant-a", "online") for _ in range(20)]
                offline = [make_envelope("tenant-a", f"off-{i}") for i in range(20)]
                for envelope in [*online, *offline]:
                    await h.publish(envelope)
                await h.wait_states(online, lambda s: s is DeliveryState.DELIVERED)
                await h.wait_states(offline, lambda s: s is DeliveryState.PENDING)
                flaky[0].failures = -1  # Redis trouble from now on: retries, then the DLQ
                doomed = make_envelope("tenant-a", "doomed")
                await h.publish(doomed)
                await h.wait_states([doomed], lambda s: s is DeliveryState.DEAD)
                (dead,) = [decode_dlq_entry(e["entry"]) for e in await h.wait_dlq_entries(1)]
                assert dead.notification_id == doomed.id
                letters = await store.list_dead_letters("tenant-a")
                assert [d.notification_id for d in letters.items] == [doomed.id]
        finally:
            await store.aclose()
