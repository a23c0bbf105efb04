"""Fallback load generator when vegeta is unavailable: keep-alive POST loops in raw sockets.

One process runs ``--connections`` Trio tasks, each on its own keep-alive
connection, sending the same pre-built request back to back for
``--duration`` seconds (at most ``--max-requests`` in all), and prints one JSON
line: completed requests, status counts and sorted-latency percentiles. The
ingest bench starts several of these processes so the generator is not
limited to one core. Talks only to 127.0.0.1.

Run alone: ``.venv/bin/python -m bench.http_load --port 8080 --path /v1/notifications
--token T --body-file b.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import trio

HOST = "127.0.0.1"


def build_request(port: int, path: str, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def _read_response(stream: trio.SocketStream, buffer: bytearray) -> int:
    """Read one response off ``stream``; its status. Leftover bytes stay in ``buffer``."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    total = end + 4 + length
    while len(buffer) < total:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    del buffer[:total]
    return status


async def run(args: argparse.Namespace, body: bytes) -> dict[str, object]:
    request = build_request(args.port, args.path, args.token, body)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    budget = [args.max_requests]
    deadline = time.perf_counter() + args.duration

    async def connection() -> None:
        stream = await trio.open_tcp_stream(HOST, args.port)
        buffer = bytearray()
        async with stream:
            while budget[0] > 0 and time.perf_counter() < deadline:
                budget[0] -= 1
                sent = time.perf_counter()
                await stream.send_all(request)
                status = await _read_response(stream, buffer)
                latencies.append(time.perf_counter() - sent)
                statuses[status] += 1

    async def guarded() -> None:
        try:
            await connection()
        except (OSError, ConnectionError, trio.BrokenResourceError) as error:
            errors[type(error).__name__] += 1

    started = time.perf_counter()
    with trio.move_on_after(args.duration + 10):
        async with trio.open_nursery() as nursery:
            for _ in range(args.connections):
                nursery.start_soon(guarded)
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0
        )

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "status_codes": {str(k): v for k, v in statuses.items()},
        "errors": dict(errors),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "latencies_ms_sample": [
            round(x * 1000, 3) for x in latencies[:: max(1, len(latencies) // 2000)]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/notifications")
    parser.add_argument("--token", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(trio.run(run, args, Path(args.body_file).read_bytes())), flush=True)


if __name__ == "__main__":
    main()
