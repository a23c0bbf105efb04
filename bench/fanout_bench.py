"""WebSocket fan-out: N concurrent sessions on ONE ``notifactor serve`` process.

Starts ``python -m notifactor serve`` (embedded Redis, SQLite persistence, the
dispatcher and the WebSocket edge in one process, limits opened up), then:

1. measures the serve process's RSS, opens ``--sessions`` WebSockets (one user
   each) from ``--client-procs`` client processes (trio-websocket), waits for
   the memory to settle and measures RSS again: RSS per idle session;
2. POSTs ``--rate`` notifications per second for ``--seconds`` through
   ``POST /v1/notifications:batch`` (batches every 50 ms), each to a random
   user, with the send time in the content; every client records
   POST→socket latency on receipt (same host clock).

Goals: p99 ≤ 50 ms at 1,000 notifications/s with persistence on; ≤ 20 KB
RSS per idle session. Writes ``bench/results/fanout.json``.
Run: ``.venv/bin/python -m bench.fanout_bench [--sessions 10000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SECRET = "fanout-bench-secret-" + "x" * 32
TENANT = "bench"
RESULTS = Path(__file__).parent / "results" / "fanout.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- client process ------------------------------------------------------------


def client_main(url: str, first: int, count: int, out: Path) -> None:
    import trio
    from trio_websocket import open_websocket_url

    from notifactor.auth.tokens import DEFAULT_SCOPES, mint_token

    latencies: list[float] = []
    connected = 0
    limiter = trio.Semaphore(64)

    async def session(index: int, all_connected: trio.Event, stop: trio.Event) -> None:
        nonlocal connected
        jwt = mint_token(
            secret=SECRET,
            tenant_id=TENANT,
            subject=f"user-{index}",
            scopes=DEFAULT_SCOPES,
            ttl_s=3600,
            now=int(time.time()),
        )
        await limiter.acquire()
        released = False
        try:
            async with open_websocket_url(f"{url}?token={jwt}", max_message_size=1 << 20) as ws:
                await ws.get_message()  # welcome
                limiter.release()
                released = True
                connected += 1
                if connected == count:
                    all_connected.set()
                while not stop.is_set():
                    raw = await ws.get_message()
                    frame = json.loads(raw)
                    if frame.get("type") == "notification":
                        latencies.append((time.time() - float(frame["content"])) * 1000)
        finally:
            if not released:
                limiter.release()

    async def main() -> None:
        all_connected, stop = trio.Event(), trio.Event()
        async with trio.open_nursery() as nursery:
            for index in range(first, first + count):
                nursery.start_soon(session, index, all_connected, stop)
            await all_connected.wait()
            print("ready", flush=True)
            await trio.to_thread.run_sync(sys.stdin.readline)
            stop.set()
            nursery.cancel_scope.cancel()

    trio.run(main)
    out.write_text(json.dumps(latencies))


# --- orchestration -----------------------------------------------------------------


def post_load(http_port: int, users: int, rate: int, seconds: float) -> dict[str, Any]:
    import httpx

    from notifactor.auth.tokens import DEFAULT_SCOPES, mint_token

    jwt = mint_token(
        secret=SECRET,
        tenant_id=TENANT,
        subject="poster",
        scopes=DEFAULT_SCOPES,
        ttl_s=3600,
        now=int(time.time()),
    )
    rng = random.Random(1)
    per_tick = max(1, rate // 20)
    sent = 0
    errors = 0
    with httpx.Client(
        base_url=f"http://127.0.0.1:{http_port}",
        headers={"Authorization": f"Bearer {jwt}"},
        timeout=10,
    ) as http:
        start = time.perf_counter()
        tick = 0
        while time.perf_counter() - start < seconds:
            due = start + tick * 0.05
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            items = [
                {
                    "tenant_id": TENANT,
                    "user_id": f"user-{rng.randrange(users)}",
                    "channel": "alerts",
                    "content": repr(time.time()),
                }
                for _ in range(per_tick)
            ]
            response = http.post("/v1/notifications:batch", json={"notifications": items})
            if response.status_code != 202:
                errors += per_tick
            else:
                errors += sum(1 for r in response.json()["results"] if "error" in r)
            sent += per_tick
            tick += 1
        elapsed = time.perf_counter() - start
    return {"sent": sent, "errors": errors, "seconds": round(elapsed, 2)}


def run(args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915 - one linear scenario
    workdir = Path(tempfile.mkdtemp(prefix="nf-fanout-"))
    http_port, ws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
    env.update(
        NOTIFACTOR_DATA_DIR=str(workdir / "var"),
        NOTIFACTOR_HTTP_PORT=str(http_port),
        NOTIFACTOR_WS_PORT=str(ws_port),
        NOTIFACTOR_JWT_SECRET=SECRET,
        NOTIFACTOR_LOG_LEVEL="warning",
        NOTIFACTOR_TENANTS__DEFAULT__RATE_PER_S="1000000",
        NOTIFACTOR_TENANTS__DEFAULT__BURST="1000000",
        NOTIFACTOR_TENANTS__DEFAULT__DAILY_QUOTA="0",
        NOTIFACTOR_TENANTS__DEFAULT__MAX_WS_CONNECTIONS="100000",
        NOTIFACTOR_SUPERVISION__SESSIONS__MAX_CHILDREN="100000",
    )
    log = (workdir / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "notifactor", "serve"], env=env, stdout=log, stderr=log
    )
    clients: list[subprocess.Popen[str]] = []
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", ws_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or serve.poll() is not None:
                    raise RuntimeError(
                        f"serve did not start; see {workdir / 'serve.log'}"
                    ) from None
                time.sleep(0.2)
        time.sleep(1.0)
        rss_before = rss_kb(serve.pid)
        per_proc = args.sessions // args.client_procs
        url = f"ws://127.0.0.1:{ws_port}/ws"
        connect_started = time.perf_counter()
        for proc in range(args.client_procs):
            out = workdir / f"lat-{proc}.json"
            clients.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.fanout_bench",
                        "--client",
                        url,
                        str(proc * per_proc),
                        str(per_proc),
                        str(out),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for client in clients:
            assert client.stdout is not None
            line = client.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError("a client process failed to connect its sessions")
        connect_s = time.perf_counter() - connect_started
        time.sleep(3.0)
        rss_idle = rss_kb(serve.pid)
        sessions = per_proc * args.client_procs
        load = post_load(http_port, sessions, args.rate, args.seconds)
        time.sleep(2.0)
        latencies: list[float] = []
        for proc, client in enumerate(clients):
            assert client.stdin is not None
            client.stdin.write("stop\n")
            client.stdin.flush()
            client.wait(timeout=60)
            latencies += json.loads((workdir / f"lat-{proc}.json").read_text())
        return {
            "benchmark": "fanout",
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "setup": {
                "server": "one `python -m notifactor serve` process: embedded Valkey, SQLite "
                "persistence, dispatcher + WebSocket edge; log_level=warning",
                "clients": f"{args.client_procs} trio-websocket client processes",
                "load": "POST /v1/notifications:batch every 50 ms, random recipient per item",
                "host": f"{os.cpu_count()} cores shared by server, Redis, clients and poster",
            },
            "sessions": sessions,
            "connect_seconds": round(connect_s, 2),
            "rss_kb_before": rss_before,
            "rss_kb_with_idle_sessions": rss_idle,
            "rss_kb_per_idle_session": round((rss_idle - rss_before) / sessions, 2),
            "rate_per_s_target": args.rate,
            "posted": load,
            "received": len(latencies),
            "post_to_socket_ms": {
                "p50": round(percentile(latencies, 0.50), 2) if latencies else None,
                "p95": round(percentile(latencies, 0.95), 2) if latencies else None,
                "p99": round(percentile(latencies, 0.99), 2) if latencies else None,
                "max": round(max(latencies), 2) if latencies else None,
                "mean": round(statistics.fmean(latencies), 2) if latencies else None,
            },
            "goals": {"p99_ms": 50, "rss_kb_per_idle_session": 20},
        }
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
        serve.terminate()
        try:
            serve.wait(timeout=20)
        except subprocess.TimeoutExpired:
            serve.kill()
        log.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
