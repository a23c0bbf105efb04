"""The same HTTP server with nothing behind it: the ceiling of one gateway process.

Runs :func:`notifactor.gateway.server.run_http_server` (hypercorn on Trio,
the gateway's own connection handling) with an ASGI app that reads the body,
parses it as JSON and answers 202 with a small JSON body: no auth, no
validation, no Redis, no logging, no metrics. What a POST costs here is what
every request costs before the gateway does anything. The ingest bench
attacks it the same way as the gateway, in the same run.

Run: ``python -m bench.bare_http PORT`` (stops on SIGTERM/SIGINT).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import trio

from notifactor.config import Config
from notifactor.gateway.server import run_http_server
from notifactor.runtime_tuning import tune_collector

REPLY = json.dumps({"id": "0190f0c2-7a1b-7c3e-9d2f-123456789abc", "status": "accepted"}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(REPLY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    json.loads(body or b"{}")
    await send({"type": "http.response.start", "status": 202, "headers": HEADERS})
    await send({"type": "http.response.body", "body": REPLY})


async def serve(port: int) -> None:
    config = Config(http_host="127.0.0.1", http_port=port)
    tune_collector(config.runtime)  # the gateway's collector settings
    with trio.open_signal_receiver(2, 15) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_http_server, app, config)
            async for _ in signals:
                nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(serve, int(sys.argv[1]))
