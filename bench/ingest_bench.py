"""Ingest throughput of one gateway process vs. a raw coredis XADD pipeline.

Starts a private Redis-compatible server (the same binary as ``notifactor
serve``), one in-process gateway on a free port, and measures in one run:

* single ``POST /v1/notifications`` per second (``--concurrency`` clients),
* batch items per second through ``POST /v1/notifications:batch`` (500/batch),
* raw ``XADD`` pipelines of 500 from coredis, same payload size.

Writes ``bench/results/ingest.json``. Run: ``.venv/bin/python -m bench.ingest_bench``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from infra.local.redis_server import LocalRedis
from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.auth.tokens import mint_token
from notifactor.auth.verify import build_verifier
from notifactor.config import Config, TenantPolicy
from notifactor.gateway.app import GatewayApp
from notifactor.gateway.context import Gateway
from notifactor.gateway.server import run_http_server

SECRET = "bench-" + "b" * 40
RESULTS = Path(__file__).parent / "results" / "ingest.json"


def body(i: int) -> dict[str, Any]:
    return {
        "tenant_id": "bench",
        "user_id": f"user-{i % 1000}",
        "channel": "alerts",
        "content": "Deployment completed",
        "metadata": {"i": i},
    }


async def bench_single(url: str, token: str, total: int, concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            for i in counter:
                r = await client.post("/v1/notifications", json=body(i), headers=headers)
                assert r.status_code == 202, r.text

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        return total / (time.perf_counter() - start)


async def bench_batch(url: str, token: str, batches: int, size: int) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    payload = {"notifications": [body(i) for i in range(size)]}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        start = time.perf_counter()
        for _ in range(batches):
            r = await client.post("/v1/notifications:batch", json=payload, headers=headers)
            assert r.status_code == 202
        return batches * size / (time.perf_counter() - start)


async def bench_raw_xadd(redis_url: str, batches: int, size: int) -> float:
    envelope = json.dumps({**body(0), "id": "0" * 36, "accepted_at": "x", "traceparent": "x" * 55})
    async with open_redis(redis_url) as redis:
        start = time.perf_counter()
        for _ in range(batches):
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(size):
                    pipe.xadd("bench:raw", {"envelope": envelope})
        elapsed = time.perf_counter() - start
        await redis.delete(["bench:raw"])
    return batches * size / elapsed


async def main(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="nf-bench-"))
    policy = TenantPolicy(rate_per_s=1e9, burst=10**9, daily_quota=0)
    config = Config(jwt_secret=SECRET, http_port=0, data_dir=data_dir, tenants={"default": policy})
    token = mint_token(
        secret=SECRET,
        tenant_id="bench",
        subject="bench",
        scopes=("notifications:write",),
        ttl_s=3600,
        now=int(time.time()),
    )
    with LocalRedis() as redis_url:
        store = await SqliteNotificationStore.open(data_dir / "n.db", lambda _t: 1)
        async with (
            open_redis(redis_url, max_connections=64) as redis,
            trio.open_nursery() as nursery,
        ):
            gateway = Gateway(
                config=config,
                verifier=build_verifier(config, hs256_secret=SECRET),
                ingest=RedisIngest(redis, IngestSettings(max_stream_lag=0)),
                store=store,
            )
            port = await nursery.start(run_http_server, GatewayApp(gateway), config)
            url = f"http://127.0.0.1:{port}"
            await bench_single(url, token, 200, 8)  # warm up
            single = await bench_single(url, token, args.single, args.concurrency)
            batch = await bench_batch(url, token, args.batches, 500)
            raw = await bench_raw_xadd(redis_url, args.batches, 500)
            nursery.cancel_scope.cancel()
        await store.aclose()
    return {
        "single_post_per_s": round(single),
        "single_concurrency": args.concurrency,
        "batch_items_per_s": round(batch),
        "raw_xadd_pipeline_items_per_s": round(raw),
        "batch_vs_raw_ratio": round(batch / raw, 3),
        "goals": {"single_post_per_s": 3000, "batch_vs_raw_ratio": 0.4},
        "note": "load generator, gateway and Redis share the same machine and one Python process "
        "(client and server in one Trio loop)",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--single", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    result = trio.run(main, parser.parse_args())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
