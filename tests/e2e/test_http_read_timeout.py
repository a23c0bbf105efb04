"""The read timeout of an HTTP connection: each read is bounded, not the whole request.

A real client talks to :class:`CoalescingTCPServer` (the gateway's connection
handler) over a real socket, with a short ``read_timeout`` so the tests are
quick. A client that stops sending mid-request loses its connection after the
timeout; one that sends slowly but keeps sending is served; a keep-alive
connection serves request after request with the one scope it reads under.
"""

from __future__ import annotations

from typing import Any

import trio
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState

from notifactor.config import Config
from notifactor.gateway.coalesced_send import CoalescingTCPServer
from notifactor.gateway.server import hypercorn_config
from tests.e2e.test_http_response_writes import exchange, get, json_app

READ_TIMEOUT_S = 0.4
#: The most a close may come after the timeout on a busy machine.
LATE_S = 1.5
HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n"


async def body_reading_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 202 once the whole body is in; a client gone gets nothing (as the gateway)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body"):
            break
    await json_app(scope, _nothing_more, send)


async def _nothing_more() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def serve_with_timeout(app: Any, *, task_status: Any) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    hc = hypercorn_config(Config(jwt_secret="x" * 40))
    hc.read_timeout = READ_TIMEOUT_S
    context = WorkerContext(None)

    async def handle(stream: trio.SocketStream) -> None:
        await CoalescingTCPServer(app, hc, context, ConnectionState({}), stream).run()

    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def _closed_after(stream: trio.SocketStream) -> float:
    """Seconds until the server closes ``stream`` (reads nothing else first)."""
    started = trio.current_time()
    with trio.fail_after(READ_TIMEOUT_S + LATE_S + 5):
        data = await stream.receive_some(65536)
    assert data == b"", data
    return trio.current_time() - started


async def test_a_client_that_stops_mid_request_is_dropped_after_the_read_timeout() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_with_timeout, body_reading_app)
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(HEAD + b"abc")  # half the body, then nothing
            waited = await _closed_after(stream)
        nursery.cancel_scope.cancel()
    assert READ_TIMEOUT_S <= waited < READ_TIMEOUT_S + LATE_S, waited


async def test_a_slow_client_that_keeps_sending_is_served() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_with_timeout, body_reading_app)
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            # Each piece within the timeout, the whole request well beyond it.
            for piece in (HEAD, b"ab", b"cd", b"ef"):
                await stream.send_all(piece)
                await trio.sleep(READ_TIMEOUT_S * 0.6)
            answer = b""
            with trio.fail_after(5):
                while b'{"status": "accepted"}' not in answer:
                    chunk = await stream.receive_some(65536)
                    assert chunk, answer
                    answer += chunk
        nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 202 ")


async def test_a_keep_alive_connection_serves_request_after_request() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_with_timeout, json_app)
        answers = await exchange(port, [get() for _ in range(20)])
        nursery.cancel_scope.cancel()
    assert answers == [(202, b'{"status": "accepted"}')] * 20
