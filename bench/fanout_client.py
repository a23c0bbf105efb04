"""Bench-only WebSocket client process: thousands of idle sessions on one asyncio loop.

Uses the ``websockets`` asyncio client (no per-connection thread, no client
pings, no compression) so that holding 5,000 sessions costs the shared CPU as
little as possible. Each session subscribes and counts as ready once its
``resume_grace_s`` hold is over (it sends no ``resume``), so live frames flow
at once when the posting starts. A notification's ``content`` is
``"<phase>:<unix time of the POST>"``; latencies are grouped by phase.

Protocol with the orchestrator: prints ``ready <connected>`` once every session
has its ``subscribed`` answer and its hold is over; on ``stop`` on stdin writes
``{"phase": [latency_ms, ...]}`` as JSON to the output file and exits.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

SUBSCRIBE = json.dumps({"type": "subscribe", "channels": ["alerts"]})
#: The server's ``resume_grace_s`` (0.5 s by default) and a margin.
OPENING_HOLD_S = 0.6


async def session(
    url: str, token: str, gate: asyncio.Semaphore, ready: list[int], lat: dict[str, list[float]]
) -> None:
    async with gate:
        ws: ClientConnection = await connect(
            f"{url}?token={token}",
            ping_interval=None,
            compression=None,
            max_size=1 << 20,
            open_timeout=120,
        )
        await ws.recv()  # welcome
        welcomed = time.monotonic()
        await ws.send(SUBSCRIBE)
        await ws.recv()  # subscribed
    await asyncio.sleep(max(0.0, welcomed + OPENING_HOLD_S - time.monotonic()))
    ready[0] += 1
    async for raw in ws:
        now = time.time()
        frame = json.loads(raw)
        if frame.get("type") == "notification":
            phase, _, sent = frame["content"].partition(":")
            lat[phase].append((now - float(sent)) * 1000)


async def run(url: str, tokens: list[str], out: Path) -> None:
    gate = asyncio.Semaphore(100)
    ready = [0]
    lat: dict[str, list[float]] = defaultdict(list)
    tasks = [asyncio.create_task(session(url, t, gate, ready, lat)) for t in tokens]
    while ready[0] < len(tokens):
        failed = [t for t in tasks if t.done() and t.exception() is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} sessions failed: {failed[0].exception()!r}")
        await asyncio.sleep(0.05)
    print(f"ready {ready[0]}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    await loop.run_in_executor(None, out.write_text, json.dumps(lat))
    for task in tasks:
        task.cancel()


def main() -> None:
    url, tokens_file, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tokens = tokens_file.read_text().split()
    asyncio.run(run(url, tokens, out))


if __name__ == "__main__":
    main()
