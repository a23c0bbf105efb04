"""A Cassandra write of several statements fails as one store error, so the writer retries it.

The store runs against a fake driver session (the real statement runner,
error translation and row builders); real-Cassandra behaviour is in
tests/integration/test_store_contract.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import trio
from cassandra import InvalidRequest, OperationTimedOut

from notifactor.actors import ActorRef, run_actor
from notifactor.actors.storage_writer import (
    StorageWriter,
    StorageWriterClient,
    StorageWriterConfig,
    WriterMessage,
)
from notifactor.adapters.cassandra_store.statements import CQL
from notifactor.adapters.cassandra_store.store import CassandraNotificationStore
from notifactor.domain.batching import BatchPolicy, RetryPolicy
from notifactor.domain.notification import Notification
from notifactor.ports.notification_store import StoreError, TransientStoreError


class Prepared:
    def __init__(self, name: str) -> None:
        self.name = name

    def bind(self, values: Any) -> tuple[str, tuple[Any, ...]]:
        return (self.name, tuple(values))


class FlakySession:
    """Fails the first ``failures`` statements with ``error``, then succeeds."""

    def __init__(self, failures: int, error: type[Exception]) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def execute(self, statement: Any, params: Any = None) -> list[Any]:
        self.calls += 1
        await trio.lowlevel.checkpoint()
        if self.failures > 0:
            self.failures -= 1
            raise self.error("coordinator said no")
        return []


def store_on(session: FlakySession) -> CassandraNotificationStore:
    prepared: Any = {name: Prepared(name) for name in CQL}
    return CassandraNotificationStore(
        session,  # type: ignore[arg-type]
        "ks",
        lambda _tenant: 30,
        prepared,
        max_in_flight=8,
        owns_session=False,
    )


def notification(ident: str = "n-1") -> Notification:
    return Notification(
        tenant_id="t",
        id=ident,
        user_id="u",
        channel="c",
        content="x",
        created_at=datetime.now(UTC),
    )


async def test_a_transient_failure_of_one_statement_is_one_transient_store_error() -> None:
    store = store_on(FlakySession(failures=2, error=OperationTimedOut))
    with pytest.raises(TransientStoreError, match="OperationTimedOut"):
        await store.save_notifications([notification()])


async def test_a_permanent_failure_among_them_is_a_store_error() -> None:
    store = store_on(FlakySession(failures=1, error=InvalidRequest))
    with pytest.raises(StoreError) as caught:
        await store.save_notifications([notification()])
    assert not isinstance(caught.value, TransientStoreError)


async def test_the_writer_retries_a_transient_multi_statement_failure() -> None:
    session = FlakySession(failures=1, error=OperationTimedOut)
    store = store_on(session)
    config = StorageWriterConfig(
        batch=BatchPolicy(max_items=1), retry=RetryPolicy(max_attempts=4, base_s=0.01)
    )
    ref: ActorRef[WriterMessage] = ActorRef("writer", mailbox_size=8)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_actor, ref, lambda: StorageWriter(store, config))
        with trio.fail_after(10):
            await StorageWriterClient(ref).write([notification()])  # durable after a retry
        nursery.cancel_scope.cancel()
    assert session.failures == 0
    assert session.calls > 5  # the failed attempt's statements, then the retry's
