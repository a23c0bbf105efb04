"""Storage write throughput: the batching writer actor vs. one statement per row.

Run: ``.venv/bin/python -m bench.storage_bench [--n 3000] [--concurrency 64]``.
Writes ``bench/results/storage.json`` and prints it.

Workload: ``n`` notifications over 50 users and 4 tenants, each followed by a
``pending`` and a ``delivered`` status update. C producer tasks submit them the
way a dispatcher does: one notification with its ``pending`` update per call,
awaiting durability, then its ``delivered`` update.

* ``writer``: through :class:`StorageWriter` (batching, grouping, limiter of C).
* ``raw`` (Cassandra): the very same single-row statements, each its own
  ``execute_async`` request, C in flight.
* ``raw`` (SQLite): one store call (one transaction) per record, C tasks.

Cassandra is ``NOTIFACTOR_TEST_CASSANDRA=host:port`` if set, else a local node
started with ``infra.local.cassandra_server`` for the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio

from notifactor.actors import ActorRef, StopSignal, run_actor
from notifactor.actors.stop import set_stop_signal
from notifactor.actors.storage_writer import (
    StorageWriter,
    StorageWriterClient,
    StorageWriterConfig,
    WriterMessage,
    kind_and_tenant,
    kind_only,
)
from notifactor.adapters.cassandra_schema import Replication, migrate
from notifactor.adapters.cassandra_session import connect_cassandra
from notifactor.adapters.cassandra_store import CassandraNotificationStore
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.domain.batching import BatchPolicy
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.ports.notification_store import NotificationStore

RESULTS = Path(__file__).resolve().parent / "results" / "storage.json"


def workload(n: int, run: str) -> list[tuple[Notification, DeliveryUpdate, DeliveryUpdate]]:
    base = datetime.now(UTC) - timedelta(minutes=10)
    out = []
    for i in range(n):
        at = base + timedelta(microseconds=i * 100)
        note = Notification(
            tenant_id=f"bench-{run}-{i % 4}",
            id=f"{i:012d}-{uuid.uuid4().hex[:12]}",
            user_id=f"user-{i % 50}",
            channel="alerts",
            content="Deployment completed " + "x" * 100,
            metadata={"build": i},
            created_at=at,
        )

        def step(state: DeliveryState, seconds: float, note: Notification = note) -> DeliveryUpdate:
            return DeliveryUpdate(
                tenant_id=note.tenant_id,
                notification_id=note.id,
                recipient_id=note.user_id,
                created_at=note.created_at,
                state=state,
                event_time=note.created_at + timedelta(seconds=seconds),
                attempts=1,
            )

        out.append((note, step(DeliveryState.PENDING, 0.1), step(DeliveryState.DELIVERED, 0.2)))
    return out


async def run_producers(
    items: list[Any], concurrency: int, work: Callable[[Any], Awaitable[None]]
) -> float:
    """Run ``work`` on every item from ``concurrency`` tasks; return elapsed seconds."""
    queue = iter(items)

    async def producer() -> None:
        for item in queue:
            await work(item)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(producer)
    return time.perf_counter() - start


async def through_writer(
    store: NotificationStore, records: list[Any], concurrency: int, *, single_file: bool
) -> float:
    config = StorageWriterConfig(
        batch=BatchPolicy(max_items=256, max_age_s=0.002, max_group_items=64),
        max_concurrent_writes=concurrency,
        max_flushes_in_flight=4,
    )
    ref: ActorRef[WriterMessage] = ActorRef("bench-writer", mailbox_size=4 * concurrency)
    stop = StopSignal()
    set_stop_signal(stop)
    key = kind_only if single_file else kind_and_tenant
    async with trio.open_nursery() as nursery:
        await nursery.start(run_actor, ref, lambda: StorageWriter(store, config, partition_key=key))
        writer = StorageWriterClient(ref)

        async def work(record: tuple[Notification, DeliveryUpdate, DeliveryUpdate]) -> None:
            note, pending, delivered = record
            await writer.write([note, pending])
            await writer.write([delivered])

        elapsed = await run_producers(records, concurrency, work)
        stop.request()
    return elapsed


async def raw_cassandra(
    store: CassandraNotificationStore, records: list[Any], concurrency: int
) -> float:
    async def work(record: tuple[Notification, DeliveryUpdate, DeliveryUpdate]) -> None:
        note, pending, delivered = record
        for statement in store.row_statements([note], [pending]):
            await store.execute_statement(statement)
        for statement in store.row_statements([], [delivered]):
            await store.execute_statement(statement)

    # One statement per request; the producers' concurrency is the in-flight bound.
    return await run_producers(records, concurrency, work)


async def raw_sqlite(store: SqliteNotificationStore, records: list[Any], concurrency: int) -> float:
    async def work(record: tuple[Notification, DeliveryUpdate, DeliveryUpdate]) -> None:
        note, pending, delivered = record
        await store.save_notifications([note])
        await store.apply_delivery_updates([pending])
        await store.apply_delivery_updates([delivered])

    return await run_producers(records, concurrency, work)


def figures(n: int, raw_s: float, writer_s: float, statements_per_record: float) -> dict[str, Any]:
    records = 3 * n
    return {
        "records": records,
        "raw_seconds": round(raw_s, 3),
        "writer_seconds": round(writer_s, 3),
        "raw_records_per_s": round(records / raw_s),
        "writer_records_per_s": round(records / writer_s),
        "writer_vs_raw": round(raw_s / writer_s, 3),
        "row_statements_per_record": statements_per_record,
    }


async def bench_sqlite(n: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        raw_store = await SqliteNotificationStore.open(Path(tmp) / "raw.db", lambda _t: 30)
        writer_store = await SqliteNotificationStore.open(Path(tmp) / "writer.db", lambda _t: 30)
        try:
            raw_s = await raw_sqlite(raw_store, workload(n, "raw"), concurrency)
            writer_s = await through_writer(
                writer_store, workload(n, "writer"), concurrency, single_file=True
            )
        finally:
            await raw_store.aclose()
            await writer_store.aclose()
    return figures(n, raw_s, writer_s, 1.0)


@contextlib.asynccontextmanager
async def cassandra_contact() -> AsyncIterator[tuple[str, int, str]]:
    external = os.environ.get("NOTIFACTOR_TEST_CASSANDRA")
    if external:
        host, _, port = external.rpartition(":")
        yield host, int(port), "external"
        return
    from infra.local.cassandra_server import LocalCassandra, fetch_jars

    node = LocalCassandra(lib_dir=await trio.to_thread.run_sync(fetch_jars))
    contact = await trio.to_thread.run_sync(node.start)
    try:
        yield contact.host, contact.port, f"local node started in {node.startup_seconds:.1f} s"
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(node.stop)


async def bench_cassandra(n: int, concurrency: int) -> dict[str, Any]:
    async with cassandra_contact() as (host, port, origin):
        keyspace = f"bench_{uuid.uuid4().hex[:10]}"
        session = await connect_cassandra([(host, port)])
        async with session:
            await migrate(session, keyspace, replication=Replication.simple(1))
            store = await CassandraNotificationStore.open(
                session, keyspace, lambda _t: 30, max_in_flight=concurrency
            )
            try:
                # Warm up the JVM and the connection before measuring.
                await through_writer(store, workload(300, "warm"), concurrency, single_file=False)
                await raw_cassandra(store, workload(300, "warmraw"), concurrency)
                raw_s = await raw_cassandra(store, workload(n, "raw"), concurrency)
                writer_s = await through_writer(
                    store, workload(n, "writer"), concurrency, single_file=False
                )
                sample = workload(1, "count")[0]
                per_record = len(store.row_statements([sample[0]], [sample[1], sample[2]])) / 3
            finally:
                await session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
    result = figures(n, raw_s, writer_s, round(per_record, 2))
    result["server"] = origin
    return result


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "bench": "storage writer vs raw single-row writes",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "notifications": args.n,
        "records_per_notification": 3,
        "concurrency": args.concurrency,
        "goal": "writer_vs_raw >= 0.8",
        "results": {},
    }
    if "sqlite" in args.backends:
        report["results"]["sqlite"] = await bench_sqlite(args.n, args.concurrency)
    if "cassandra" in args.backends:
        report["results"]["cassandra"] = await bench_cassandra(args.n, args.concurrency)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storage_bench")
    parser.add_argument("--n", type=int, default=3000, help="notifications (3 records each)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,cassandra")
    args = parser.parse_args()
    report = trio.run(main_async, args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
