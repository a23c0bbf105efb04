"""Cost of metrics + tracing on the ingest path, on vs. off in the same run.

Drives ``POST /v1/notifications`` straight into the ASGI app (no sockets, so
the instrumentation is a larger share of the time than it would be behind
hypercorn) against a real private Redis, in two configurations alternated over
several rounds:

* ``off``: the raw ``RedisIngest`` and no tracer provider (no-op spans);
* ``on``: ``InstrumentedIngest`` plus an SDK tracer provider recording every
  span through a ``BatchSpanProcessor`` into an exporter that drops them.

The HTTP request metrics and the access log line are part of the app and run
in both (logging is configured at WARNING, as the access line's cost is the
handler's, not ours); their per-call cost is measured separately.

Writes ``bench/results/observability.json``. Run:
``.venv/bin/python -m bench.observability_bench``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from infra.local.redis_server import LocalRedis
from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.auth.tokens import mint_token
from notifactor.auth.verify import build_verifier
from notifactor.config import Config, TenantPolicy
from notifactor.gateway.access import record_request
from notifactor.gateway.app import GatewayApp
from notifactor.gateway.context import Gateway
from notifactor.observability.instrumented import InstrumentedIngest
from notifactor.observability.tracing import build_tracer_provider, use_tracer_provider
from notifactor.ports.ingest import IngestBus

SECRET = "bench-" + "o" * 40
RESULTS = Path(__file__).parent / "results" / "observability.json"


class DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def _post_many(app: GatewayApp, token: str, count: int) -> float:
    body = json.dumps(
        {"tenant_id": "bench", "user_id": "u-1", "channel": "alerts", "content": "x" * 200}
    ).encode()
    headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {"type": "http", "method": "POST", "path": "/v1/notifications", "headers": headers}
    scope["client"] = ("127.0.0.1", 40000)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    statuses: list[int] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.perf_counter()
    for _ in range(count):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - started
    if set(statuses) != {202}:
        raise RuntimeError(f"unexpected statuses {sorted(set(statuses))}")
    return elapsed / count


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.getLogger().setLevel(logging.WARNING)
    config = Config(
        jwt_secret=SECRET,
        tenants={"default": TenantPolicy(rate_per_s=1e9, burst=1_000_000_000, daily_quota=0)},
    )
    token = mint_token(
        secret=SECRET,
        tenant_id="bench",
        subject="u-1",
        scopes=("notifications:write",),
        ttl_s=3600,
        now=int(time.time()),
    )
    provider = build_tracer_provider(config, BatchSpanProcessor(DroppingExporter()))
    per_call: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp, LocalRedis() as redis_url:
        store = await SqliteNotificationStore.open(Path(tmp) / "n.db", lambda _t: 1)
        async with open_redis(redis_url) as redis:
            raw = RedisIngest(redis, IngestSettings(stream_prefix="bench:obs:", max_stream_lag=0))
            apps: dict[str, tuple[GatewayApp, bool]] = {}
            for mode, ingest in (("off", raw), ("on", InstrumentedIngest(raw))):
                bus: IngestBus = ingest
                gateway = Gateway(
                    config=config,
                    verifier=build_verifier(config, hs256_secret=SECRET),
                    ingest=bus,
                    store=store,
                )
                apps[mode] = (GatewayApp(gateway), mode == "on")
            await _post_many(apps["off"][0], token, 200)  # warm up
            for _ in range(args.rounds):
                for mode, (app, traced) in apps.items():
                    use_tracer_provider(provider if traced else None)
                    per_call[mode].append(await _post_many(app, token, args.requests))
            use_tracer_provider(None)
            await redis.delete(
                ["bench:obs:" + str(p) for p in range(config.supervision.partitions)]
            )
        await store.aclose()
    provider.shutdown()
    started = time.perf_counter()
    for _ in range(20_000):
        record_request("notifications", "POST", 202, started)
    record_cost_us = (time.perf_counter() - started) / 20_000 * 1e6
    off_us = statistics.median(per_call["off"]) * 1e6
    on_us = statistics.median(per_call["on"]) * 1e6
    return {
        "ingest_request_us_off": round(off_us, 1),
        "ingest_request_us_on": round(on_us, 1),
        "overhead_us": round(on_us - off_us, 1),
        "overhead_ratio": round(on_us / off_us - 1, 4),
        "http_metrics_and_access_log_us_per_request": round(record_cost_us, 2),
        "rounds": args.rounds,
        "requests_per_round": args.requests,
        "note": (
            "median per-request time over alternating rounds; ASGI called in-process against a "
            "real local Redis; 'on' = InstrumentedIngest + recording SDK spans (batch processor, "
            "dropping exporter); HTTP metrics/access log run in both and are measured alone"
        ),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    result = trio.run(main, args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run()
