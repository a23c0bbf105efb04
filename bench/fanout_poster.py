"""Bench-only load generator: POSTs notifications at a fixed rate from its own process.

Paced by the clock (not by replies): every ``1/ticks_per_s`` a request is
started as its own task, up to ``--in-flight`` at once, so a slow reply never
lowers the offered rate. ``--batch 1`` posts ``POST /v1/notifications`` one
notification per request; ``--batch N`` posts ``:batch`` with N items.
Each item goes to a random user and carries ``"<phase>:<unix time>"`` as
content. Prints one JSON line: offered, accepted, errors, achieved rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time

import httpx


async def run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    per_request = max(1, args.batch)
    requests_per_s = args.rate / per_request
    total = int(args.rate * args.seconds / per_request)
    in_flight = asyncio.Semaphore(args.in_flight)
    counts = {"accepted": 0, "errors": 0}
    round_trips: list[float] = []
    limits = httpx.Limits(max_connections=args.in_flight, max_keepalive_connections=args.in_flight)

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{args.port}",
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=30,
        limits=limits,
    ) as http:

        async def post() -> None:
            started = time.perf_counter()
            try:
                items = [
                    {
                        "tenant_id": args.tenant,
                        "user_id": f"user-{rng.randrange(args.users)}",
                        "channel": "alerts",
                        "content": f"{args.phase}:{time.time()!r}",
                    }
                    for _ in range(per_request)
                ]
                if per_request == 1:
                    response = await http.post("/v1/notifications", json=items[0])
                    ok = response.status_code == 202
                    counts["accepted" if ok else "errors"] += 1
                    return
                response = await http.post("/v1/notifications:batch", json={"notifications": items})
                if response.status_code != 202:
                    counts["errors"] += per_request
                    return
                bad = sum(1 for r in response.json()["results"] if "error" in r)
                counts["errors"] += bad
                counts["accepted"] += per_request - bad
            except httpx.HTTPError:
                counts["errors"] += per_request
            finally:
                round_trips.append((time.perf_counter() - started) * 1000)
                in_flight.release()

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        for i in range(total):
            due = start + i / requests_per_s
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await in_flight.acquire()
            task = asyncio.create_task(post())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        offered_s = time.perf_counter() - start
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "offered": total * per_request,
        **counts,
        "batch": per_request,
        "seconds_offering": round(offered_s, 2),
        "seconds_until_all_answered": round(elapsed, 2),
        "achieved_per_s": round(total * per_request / max(offered_s, 1e-9), 1),
        "cpu_cores": round(cpu_seconds() / elapsed, 3),
        "request_ms": percentiles(round_trips),
    }


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": pick(0.5), "p99": pick(0.99), "max": round(ordered[-1], 2)}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--phase", required=True)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
