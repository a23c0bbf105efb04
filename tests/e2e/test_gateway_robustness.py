"""Malformed traffic never takes the HTTP server down (hypercorn on Trio, upstream issue 225).

Each test sends raw bytes over a plain socket, then proves the same listener
still answers a normal request.
"""

from __future__ import annotations

import contextlib
import json

import h11
import httpx
import pytest
import trio

from notifactor.config import Config
from notifactor.gateway.server import KEEP_ALIVE_TIMEOUT_S, run_http_server
from tests.e2e.conftest import RunningGateway, notification

WS_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)

RAW_INPUTS = {
    "garbage": b"\x00\xff\x13\x37 not http at all \r\n\r\n",
    "bad_request_line": b"GET\r\n\r\n",
    "oversized_header": b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: "
    + b"a" * 70_000
    + b"\r\n\r\n",
    "half_sent_headers": b"POST /v1/notifications HTTP/1.1\r\nHost: x\r\nContent-Len",
    "half_sent_body": b"POST /v1/notifications HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
    "ws_upgrade_trailing_bytes": WS_UPGRADE + b"\x81\x85garbage-after-headers" * 50,
    "ws_upgrade_plain": WS_UPGRADE,
    "bad_content_length": b"POST /v1/notifications HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "h2_preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 64,
    "two_content_lengths": (
        b"POST /v1/notifications HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        b"Content-Length: 2\r\n\r\nab"
    ),
}


async def _send_raw(port: int, payload: bytes, *, read: bool = True) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    try:
        try:
            await stream.send_all(payload)
        except trio.BrokenResourceError:
            return b""
        if read:
            with trio.move_on_after(1.0):
                while chunk := await stream.receive_some(65536):
                    received += chunk
    except trio.BrokenResourceError:
        pass
    finally:
        await stream.aclose()
    return received


async def _still_serving(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        response = await client.get("/health/live")
    assert response.status_code == 200


@pytest.mark.parametrize("name", sorted(RAW_INPUTS))
async def test_raw_bytes_do_not_take_the_server_down(gateway: RunningGateway, name: str) -> None:
    reply = await _send_raw(gateway.port, RAW_INPUTS[name])
    assert b"Traceback" not in reply
    await _still_serving(gateway)


async def test_many_bad_connections_at_once(gateway: RunningGateway) -> None:
    async with trio.open_nursery() as nursery:
        for payload in RAW_INPUTS.values():
            for _ in range(5):
                nursery.start_soon(_send_raw, gateway.port, payload)
    await _still_serving(gateway)


async def test_websocket_upgrade_is_refused(gateway: RunningGateway) -> None:
    reply = await _send_raw(gateway.port, WS_UPGRADE)
    assert not reply.startswith(b"HTTP/1.1 101")
    await _still_serving(gateway)


async def test_abrupt_disconnect_mid_request(gateway: RunningGateway) -> None:
    for _ in range(10):
        await _send_raw(gateway.port, RAW_INPUTS["half_sent_body"], read=False)
    await _still_serving(gateway)


async def test_cancellation_drains_in_flight_requests() -> None:
    """Cancelling the server lets a request that is already running finish."""
    started = trio.Event()

    async def slow_app(scope: dict[str, object], receive: object, send: object) -> None:
        assert scope["type"] == "http"
        started.set()
        await trio.sleep(0.3)
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"done"})  # type: ignore[operator]

    config = Config(jwt_secret="x" * 40, http_port=0, shutdown_grace_s=5.0)
    result: list[httpx.Response] = []
    async with trio.open_nursery() as clients, trio.open_nursery() as server:
        port = await server.start(run_http_server, slow_app, config)

        async def call() -> None:
            async with httpx.AsyncClient() as client:
                result.append(await client.get(f"http://127.0.0.1:{port}/"))

        clients.start_soon(call)
        await started.wait()
        server.cancel_scope.cancel()
    assert result
    assert result[0].status_code == 200
    assert result[0].text == "done"


async def test_keep_alive_reuses_a_connection_then_closes_it_when_idle() -> None:
    """Many requests on one connection; once idle for the keep-alive timeout, it closes."""

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    config = Config(jwt_secret="x" * 40, http_port=0)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    async with trio.open_nursery() as server:
        port = await server.start(run_http_server, app, config)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        for _ in range(20):
            await stream.send_all(request)
            reply = b""
            with trio.fail_after(5):
                while not reply.endswith(b"\r\n\r\nok"):
                    reply += await stream.receive_some(65536)
            assert reply.startswith(b"HTTP/1.1 200")
        idle_since = trio.current_time()
        with trio.fail_after(KEEP_ALIVE_TIMEOUT_S + 5):
            assert await stream.receive_some(65536) == b""  # closed by the server
        assert trio.current_time() - idle_since >= KEEP_ALIVE_TIMEOUT_S - 0.5
        await stream.aclose()
        server.cancel_scope.cancel()


async def test_a_client_gone_mid_request_does_not_hold_up_shutdown() -> None:
    """A connection whose client left during a request is not kept open until the grace ends."""
    answered = trio.Event()

    async def slow_app(scope: dict[str, object], receive: object, send: object) -> None:
        await trio.sleep(0.2)
        headers = [(b"content-length", b"2")]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
            await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]
        finally:
            answered.set()

    config = Config(jwt_secret="x" * 40, http_port=0, shutdown_grace_s=20.0)
    async with trio.open_nursery() as server:
        port = await server.start(run_http_server, slow_app, config)
        for _ in range(3):
            await _send_raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", read=False)
        with trio.fail_after(5):
            await answered.wait()
        await trio.sleep(0.2)
        stopping = trio.current_time()
        server.cancel_scope.cancel()
    assert trio.current_time() - stopping < 3.0


async def _answers_on_one_connection(
    port: int, requests: list[tuple[h11.Request, bytes]]
) -> list[h11.Response]:
    """Send each request on one connection after the previous answer; each answer's head.

    Each request's head goes out alone, its body a moment later.

    A body shorter than its declared length is sent as is, without its end.
    Stops early once the server says the connection closes.
    """
    client = h11.Connection(h11.CLIENT)
    answers: list[h11.Response] = []
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        for request, body in requests:
            await stream.send_all(client.send(request))
            await trio.sleep(0.02)  # the head alone first: the server may answer from it
            raw = client.send(h11.Data(data=body))
            if client.their_state is not h11.MUST_CLOSE and len(body) == int(
                dict(request.headers)[b"content-length"]
            ):
                raw += client.send(h11.EndOfMessage())
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(raw)
            response: h11.Response | None = None
            with trio.fail_after(10):
                while True:
                    event = client.next_event()
                    if event is h11.NEED_DATA:
                        client.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Response):
                        response = event
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
            assert response is not None
            answers.append(response)
            if client.our_state is not h11.DONE or client.their_state is not h11.DONE:
                break
            client.start_next_cycle()
    return answers


def _post(
    body: bytes, *, token: str = "not-a-token", length: int | None = None
) -> tuple[h11.Request, bytes]:
    headers = [
        ("Host", "x"),
        ("Content-Type", "application/json"),
        ("Authorization", f"Bearer {token}"),
        ("Content-Length", str(len(body) if length is None else length)),
    ]
    return h11.Request(method="POST", target="/v1/notifications", headers=headers), body


async def test_an_answer_given_before_the_body_is_read_keeps_the_connection(
    gateway: RunningGateway, tenant: str
) -> None:
    """A 401 decided from the headers alone still reads the body, so keep-alive holds."""
    body = json.dumps(notification(tenant)).encode()
    refused = _post(body)
    accepted = _post(body, token=gateway.token(tenant))
    answers = await _answers_on_one_connection(gateway.port, [refused] * 5 + [accepted])
    assert [a.status_code for a in answers] == [401] * 5 + [202]
    assert all((b"connection", b"close") not in a.headers for a in answers)


async def test_a_body_left_unread_is_answered_with_connection_close(
    gateway: RunningGateway, tenant: str
) -> None:
    """A 413 from Content-Length alone does not read the body, and says the connection ends."""
    too_long = gateway.config.limits.body_max_bytes + 1
    answers = await _answers_on_one_connection(
        gateway.port, [_post(b"{}", token=gateway.token(tenant), length=too_long), _post(b"{}")]
    )
    assert [a.status_code for a in answers] == [413]
    assert (b"connection", b"close") in answers[0].headers
    await _still_serving(gateway)
