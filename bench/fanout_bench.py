"""WebSocket fan-out: N concurrent sessions on ONE ``notifactor serve`` process.

For each session count in ``--sessions`` (default 1,000 then 10,000), a fresh
server is started (``bench.fanout_serve``: ``notifactor serve`` with embedded
Valkey and SQLite persistence, plus GC/profiling hooks), then:

1. RSS of the serve process is read (after a ``gc.collect()``), the sessions
   are opened from client processes (``bench.fanout_client``: thousands of
   ``websockets`` asyncio connections each, one user per session, each sends
   ``subscribe`` first), they idle, GC again, RSS again: **RSS per idle
   session** = delta / sessions;
2. for each rate in ``--rates`` a separate poster process
   (``bench.fanout_poster``) offers that many notifications per second for
   ``--seconds`` (paced by the clock, ``--batch`` items per request, random
   recipient); clients record POST→socket latency on receipt (same host
   clock), grouped by phase.

Per phase it reports the achieved rate, the delivered count, p50/p95/p99/max,
and the CPU each process used (serve, its Valkey child, clients, poster) as a
share of one core. Loopback only; bounded in time; writes
``bench/results/fanout.json`` with the goals and whether they are met.

Goals: p99 ≤ 50 ms at 1,000 notifications/s with persistence on; ≤ 20 KB RSS
per idle session.

Run: ``.venv/bin/python -m bench.fanout_bench`` (about 3 minutes);
``--sessions 1000 --rates 1000 --no-write`` for a quick look;
``--profile /tmp/serve.prof`` to cProfile the server during the last rate;
``--tracemalloc /tmp/snaps`` to write snapshots before/after connecting
(compare with ``python -m bench.fanout_memory /tmp/snaps``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from infra.local.redis_server import LocalRedis

SECRET = "fanout-bench-secret-" + "x" * 32
TENANT = "bench"
RESULTS = Path(__file__).parent / "results" / "fanout.json"
RESULTS_SPLIT = Path(__file__).parent / "results" / "fanout-split.json"
GOAL_P99_MS = 50.0
GOAL_RATE = 1000
GOAL_KB_PER_SESSION = 20.0
SESSIONS_PER_CLIENT = 5000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def token(subject: str) -> str:
    from notifactor.auth.tokens import DEFAULT_SCOPES, mint_token

    return mint_token(
        secret=SECRET,
        tenant_id=TENANT,
        subject=subject,
        scopes=DEFAULT_SCOPES,
        ttl_s=7200,
        now=int(time.time()),
    )


class CpuMeter:
    """CPU seconds of a set of processes between two readings."""

    def __init__(self, processes: dict[str, list[psutil.Process]]) -> None:
        self._processes = processes
        self._start = self._read()
        self._host0 = self._host_busy()
        self._t0 = time.perf_counter()

    def _read(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, procs in self._processes.items():
            total = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    continue
            out[name] = total
        return out

    @staticmethod
    def _host_busy() -> float:
        times = psutil.cpu_times()
        return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))

    def share_of_one_core(self) -> dict[str, float]:
        end = self._read()
        wall = time.perf_counter() - self._t0
        out = {name: round((end[name] - self._start.get(name, 0.0)) / wall, 3) for name in end}
        host = (self._host_busy() - self._host0) / wall
        out["host_busy"] = round(host, 3)
        out["other_processes"] = round(host - sum(v for k, v in out.items() if k != "host_busy"), 3)
        return out


def wait_ports(serve: subprocess.Popen[bytes], ports: list[int], log: Path) -> None:
    deadline = time.time() + 60
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or serve.poll() is not None:
                    raise RuntimeError(f"serve did not start; see {log}") from None
                time.sleep(0.2)


def latency_buckets(http_port: int) -> dict[float, float]:
    """The server's ``delivery_latency_ms`` histogram (acceptance → socket write)."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).text
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("delivery_latency_ms_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def bucket_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0.0
    out: dict[str, Any] = {"count": int(total)}
    for name, q in (("p50_at_most", 0.5), ("p99_at_most", 0.99)):
        out[name] = next((le for le, n in delta if total and n >= q * total), None)
    return out


def gc_pauses(log: Path, start: float, end: float) -> dict[str, Any]:
    """Full (generation 2) collections in the server between ``start`` and ``end``."""
    pauses = [
        float(ms)
        for at, _gen, ms in (line.split() for line in log.read_text().splitlines() if line)
        if start <= float(at) <= end
    ]
    return {
        "count": len(pauses),
        "max_ms": max(pauses, default=0.0),
        "total_ms": round(sum(pauses), 1),
    }


def rss_after_gc(serve: psutil.Process, settle_s: float) -> int:
    serve.send_signal(signal.SIGUSR1)
    time.sleep(settle_s)
    return int(serve.memory_info().rss // 1024)


class SessionsServer:
    """One serve (or gateway + dispatcher) process with its sessions open, for phases of load.

    Entering starts the server, measures its RSS, opens the sessions from
    client processes and lets them idle; :meth:`phase` then offers one rate
    for a while (phases can follow one another, and the phases of several
    servers can alternate); :meth:`finish` stops the clients and adds each
    phase's delivered count and POST→socket latencies. With
    ``args.measure_rss`` false the RSS readings (and their pauses) are
    skipped and reported as 0.
    """

    def __init__(self, args: argparse.Namespace, sessions: int, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.http_port, self.ws_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFACTOR_")}
        env.update(
            NOTIFACTOR_DATA_DIR=str(workdir / f"var-{sessions}"),
            NOTIFACTOR_HTTP_PORT=str(self.http_port),
            NOTIFACTOR_WS_PORT=str(self.ws_port),
            NOTIFACTOR_JWT_SECRET=SECRET,
            NOTIFACTOR_LOG_LEVEL="warning",
            NOTIFACTOR_TENANTS__DEFAULT__RATE_PER_S="1000000",
            NOTIFACTOR_TENANTS__DEFAULT__BURST="1000000",
            NOTIFACTOR_TENANTS__DEFAULT__DAILY_QUOTA="0",
            NOTIFACTOR_TENANTS__DEFAULT__MAX_WS_CONNECTIONS="100000",
            NOTIFACTOR_SUPERVISION__SESSIONS__MAX_CHILDREN="100000",
        )
        env.update(getattr(args, "serve_env", None) or {})
        for item in getattr(args, "set", None) or []:
            key, _, value = item.partition("=")
            env[key] = value
        if getattr(args, "partitions", None):
            env["NOTIFACTOR_SUPERVISION__PARTITIONS"] = str(args.partitions)
        self.gc_log = workdir / f"gc-{sessions}.log"
        env["FANOUT_GC_LOG"] = str(self.gc_log)
        if args.gc_freeze:
            env["FANOUT_GC_FREEZE"] = "1"
        if args.profile:
            env["FANOUT_PROFILE"] = f"{args.profile}.{sessions}"
        self.snaps: Path | None = None
        if args.tracemalloc:
            self.snaps = Path(args.tracemalloc) / str(sessions)
            self.snaps.mkdir(parents=True, exist_ok=True)
            env["FANOUT_TRACEMALLOC"] = str(self.snaps)
        self.env, self.sessions = env, sessions
        self.split = getattr(args, "topology", "serve") == "split"
        self.redis_server: LocalRedis | None = None
        self.dispatcher_popen: subprocess.Popen[bytes] | None = None
        self.serve_popen: subprocess.Popen[bytes] | None = None
        self.clients: list[subprocess.Popen[str]] = []
        self.log_path = workdir / f"serve-{sessions}.log"
        self.phases: list[dict[str, Any]] = []
        self.setup: dict[str, Any] = {}

    def __enter__(self) -> SessionsServer:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        env, sessions, workdir = self.env, self.sessions, self.workdir
        if self.split:
            # One gateway process holds every session; a dispatcher process of
            # its own consumes, persists and routes; a shared Redis and SQLite file.
            self.redis_server = LocalRedis()
            env["NOTIFACTOR_REDIS_URL"] = self.redis_server.start()
            env["NOTIFACTOR_STORAGE_URL"] = f"sqlite:///{workdir / f'var-{sessions}' / 'nf.db'}"
        with self.log_path.open("w") as log:
            self.serve_popen = subprocess.Popen(
                [sys.executable, "-m", "bench.fanout_serve", "gateway" if self.split else "serve"],
                env=env,
                stdout=log,
                stderr=log,
            )
        wait_ports(self.serve_popen, [self.ws_port, self.http_port], self.log_path)
        if self.split:
            metrics_port = free_port()
            with self.log_path.open("a") as log:
                self.dispatcher_popen = subprocess.Popen(
                    [sys.executable, "-m", "notifactor", "dispatcher"],
                    env={**env, "NOTIFACTOR_OBSERVABILITY__METRICS_PORT": str(metrics_port)},
                    stdout=log,
                    stderr=log,
                )
            wait_ports(self.dispatcher_popen, [metrics_port], self.log_path)
        self.serve = serve = psutil.Process(self.serve_popen.pid)
        measure_rss = getattr(self.args, "measure_rss", True)
        if measure_rss:
            time.sleep(1.0)
        rss_before = rss_after_gc(serve, 1.0) if measure_rss else 0
        if self.snaps is not None:
            serve.send_signal(signal.SIGUSR2)
            time.sleep(3.0)
        procs = max(1, -(-sessions // SESSIONS_PER_CLIENT))
        self.per_proc = per_proc = sessions // procs
        url = f"ws://127.0.0.1:{self.ws_port}/ws"
        connect_started = time.perf_counter()
        connect_cpu = CpuMeter({"serve": [serve]})
        for proc in range(procs):
            tokens = workdir / f"tokens-{sessions}-{proc}.txt"
            first = proc * per_proc
            tokens.write_text("\n".join(token(f"user-{i}") for i in range(first, first + per_proc)))
            self.clients.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.fanout_client",
                        url,
                        str(tokens),
                        str(workdir / f"lat-{sessions}-{proc}.json"),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for client in self.clients:
            assert client.stdout is not None
            line = client.stdout.readline()
            if not line.startswith("ready"):
                raise RuntimeError("a client process failed to connect its sessions")
        connect_s = time.perf_counter() - connect_started
        connect_serve_cpu = connect_cpu.share_of_one_core()["serve"]
        time.sleep(self.args.idle_s)
        rss_idle = rss_after_gc(serve, 2.0) if measure_rss else 0
        if self.snaps is not None:
            serve.send_signal(signal.SIGUSR2)
            time.sleep(5.0)
        self.valkey = (
            [psutil.Process(self.redis_server._process.pid)]
            if self.redis_server is not None and self.redis_server._process is not None
            else serve.children(recursive=True)
        )
        self.others = (
            {"dispatcher": [psutil.Process(self.dispatcher_popen.pid)]}
            if self.dispatcher_popen
            else {}
        )
        self.client_ps = [psutil.Process(c.pid) for c in self.clients]
        self.poster_token = token("poster")
        self.setup = {
            "sessions": per_proc * procs,
            "client_processes": procs,
            "connect_seconds": round(connect_s, 2),
            "serve_cpu_cores_while_connecting": connect_serve_cpu,
            "rss_kb_before": rss_before,
            "rss_kb_with_idle_sessions": rss_idle,
            "rss_kb_per_idle_session": round((rss_idle - rss_before) / (per_proc * procs), 2),
        }

    def phase(self, rate: int, *, name: str | None = None, profile: bool = False) -> dict[str, Any]:
        """Offer ``rate`` notifications a second for ``--seconds``, then let them drain."""
        args = self.args
        phase = name or f"s{self.sessions}r{rate}"
        poster = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.fanout_poster",
                "--port",
                str(self.http_port),
                "--token",
                self.poster_token,
                "--tenant",
                TENANT,
                "--users",
                str(self.setup["sessions"]),
                "--rate",
                str(rate),
                "--seconds",
                str(args.seconds),
                "--phase",
                phase,
                "--batch",
                str(args.batch),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        buckets = latency_buckets(self.http_port)
        phase_started = time.time()
        if profile:
            self.serve.send_signal(signal.SIGUSR2)
        meter = CpuMeter(
            {"serve": [self.serve], "valkey": self.valkey, "clients": self.client_ps, **self.others}
        )
        out, _ = poster.communicate(timeout=args.seconds + 120)
        cpu = meter.share_of_one_core()
        if profile:
            self.serve.send_signal(signal.SIGUSR2)
        posted = json.loads(out)
        cpu["poster"] = posted.pop("cpu_cores")
        cpu["other_processes"] = round(cpu["other_processes"] - cpu["poster"], 3)
        time.sleep(args.drain_s)
        entry = {
            "phase": phase,
            "rate_per_s_target": rate,
            "posted": posted,
            "cpu_cores": cpu,
            "server_accept_to_socket_write_ms": bucket_quantiles(
                buckets, latency_buckets(self.http_port)
            ),
            "serve_gc_gen2_pauses": gc_pauses(self.gc_log, phase_started, time.time()),
        }
        self.phases.append(entry)
        return entry

    def finish(self) -> dict[str, Any]:
        """Stop the clients; every phase gains its delivered count and latencies."""
        latencies: dict[str, list[float]] = {}
        for proc, client in enumerate(self.clients):
            assert client.stdin is not None
            client.stdin.write("stop\n")
            client.stdin.flush()
            client.wait(timeout=60)
            got = json.loads((self.workdir / f"lat-{self.sessions}-{proc}.json").read_text())
            for phase_name, values in got.items():
                latencies.setdefault(phase_name, []).extend(values)
        for entry in self.phases:
            values = sorted(latencies.get(entry["phase"], []))
            entry["delivered"] = len(values)
            entry["post_to_socket_ms"] = (
                {
                    "p50": round(percentile(values, 0.50), 2),
                    "p95": round(percentile(values, 0.95), 2),
                    "p99": round(percentile(values, 0.99), 2),
                    "max": round(values[-1], 2),
                }
                if values
                else None
            )
        return {**self.setup, "phases": self.phases}

    def close(self) -> None:
        for client in self.clients:
            if client.poll() is None:
                client.kill()
        for process in (self.serve_popen, self.dispatcher_popen):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.redis_server is not None:
            self.redis_server.stop()


def run_sessions(args: argparse.Namespace, sessions: int, workdir: Path) -> dict[str, Any]:
    """One server with ``sessions`` sessions, each of ``--rates`` offered in turn."""
    with SessionsServer(args, sessions, workdir) as server:
        for rate in args.rates:
            server.phase(rate, profile=bool(args.profile) and rate == args.rates[-1])
        return server.finish()


def goals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    biggest = max(runs, key=lambda r: r["sessions"])
    at_goal = [p for p in biggest["phases"] if p["rate_per_s_target"] == GOAL_RATE]
    p99 = (
        at_goal[0]["post_to_socket_ms"]["p99"]
        if at_goal and at_goal[0]["post_to_socket_ms"]
        else None
    )
    achieved = at_goal[0]["posted"]["achieved_per_s"] if at_goal else None
    delivered_all = bool(at_goal) and at_goal[0]["delivered"] == at_goal[0]["posted"]["accepted"]
    kb = biggest["rss_kb_per_idle_session"]
    return {
        "at_sessions": biggest["sessions"],
        "p99_ms": {
            "goal": GOAL_P99_MS,
            "measured": p99,
            "at_rate_per_s": achieved,
            "every_accepted_delivered": delivered_all,
            "met": p99 is not None and p99 <= GOAL_P99_MS and (achieved or 0) >= 0.98 * GOAL_RATE,
        },
        "rss_kb_per_idle_session": {
            "goal": GOAL_KB_PER_SESSION,
            "measured": kb,
            "met": kb <= GOAL_KB_PER_SESSION,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--rates", type=int, nargs="+", default=[200, 500, 1000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=10, help="items per POST (1: single POSTs)")
    parser.add_argument("--idle-s", type=float, default=3.0)
    parser.add_argument("--drain-s", type=float, default=2.0)
    parser.add_argument("--profile", default=None, help="cProfile the server to this path prefix")
    parser.add_argument("--tracemalloc", default=None, help="write tracemalloc snapshots here")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="experiment: gc.freeze() in the server once sessions are idle (not product code)",
    )
    parser.add_argument(
        "--topology",
        choices=["serve", "split"],
        default="serve",
        help="serve: every role in one process; split: the sessions' gateway process plus a "
        "dispatcher process (Redis and SQLite shared)",
    )
    parser.add_argument(
        "--partitions", type=int, default=None, help="[supervision] partitions (default: 16)"
    )
    parser.add_argument(
        "--set", action="append", metavar="NOTIFACTOR_KEY=VALUE", help="more server settings"
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="default: per topology")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="nf-fanout-"))
    started = time.time()
    runs = [run_sessions(args, n, workdir) for n in args.sessions]
    result = {
        "benchmark": "fanout",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": round(time.time() - started, 1),
        "setup": {
            "server": (
                "one `notifactor serve` process (via bench.fanout_serve): embedded Valkey, "
                "SQLite persistence, dispatcher + WebSocket edge; log_level=warning"
                if args.topology == "serve"
                else "one `notifactor gateway` process (via bench.fanout_serve) holding every "
                "session + one `notifactor dispatcher` process; a private Valkey; one SQLite "
                "file; log_level=warning; 'serve' CPU is the gateway's"
            ),
            "topology": args.topology,
            "partitions": args.partitions or 16,
            "clients": f"`websockets` asyncio processes, up to {SESSIONS_PER_CLIENT} sessions each; "
            "each session subscribes first",
            "load": f"separate poster process, clock-paced, {args.batch} item(s) per POST, "
            "random recipient per item",
            "latency": "client receive time minus the poster's time.time() when building the request",
            "rss": "serve-process RSS delta after gc.collect(), sessions idle, divided by sessions",
            "cpu_cores": "CPU seconds / wall seconds per process during the phase (1.0 = one core)",
            "host": f"{os.cpu_count()} cores shared by server, Valkey, clients and poster",
            "gc_freeze_experiment": args.gc_freeze,
        },
        "runs": runs,
        "goals": goals(runs),
    }
    print(json.dumps(result, indent=2))
    if not args.no_write:
        output = args.output or (RESULTS if args.topology == "serve" else RESULTS_SPLIT)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
