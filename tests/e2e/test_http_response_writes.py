"""Each HTTP response leaves the server in as few socket writes as its shape allows.

A real client talks to :class:`CoalescingTCPServer` over a real socket; the
server side of that socket is wrapped so every ``send_all`` is recorded.
"""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
import h11
import pytest
import trio
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState

from notifactor.config import Config
from notifactor.gateway import server
from notifactor.gateway.coalesced_send import CoalescingTCPServer
from notifactor.gateway.server import hypercorn_config, run_http_server


class RecordingStream:
    """A server-side socket stream that remembers each write."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self.socket = stream.socket
        self.writes: list[bytes] = []

    async def send_all(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        await self._stream.send_all(data)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._stream.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


async def json_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    body = b'{"status": "accepted"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def streamed_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await send({"type": "http.response.body", "body": b"second", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def failing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("the app fails after its response head")


async def serve_one(app: Any, writes: list[RecordingStream], *, task_status: Any) -> None:
    """Serve ``app`` with :class:`CoalescingTCPServer`, one recorded stream per connection."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    hc = hypercorn_config(Config(jwt_secret="x" * 40))
    context = WorkerContext(None)

    async def handle(stream: trio.SocketStream) -> None:
        recorded = RecordingStream(stream)
        writes.append(recorded)
        await CoalescingTCPServer(app, hc, context, ConnectionState({}), recorded).run()  # type: ignore[arg-type]

    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def exchange(port: int, requests: list[h11.Request]) -> list[tuple[int, bytes]]:
    """Send each request on one keep-alive connection; the (status, body) of each answer."""
    client = h11.Connection(h11.CLIENT)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    answers: list[tuple[int, bytes]] = []
    async with stream:
        for request in requests:
            await stream.send_all(client.send(request) + client.send(h11.EndOfMessage()))
            status, body = 0, b""
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
            answers.append((status, body))
            client.start_next_cycle()
    return answers


def get(path: str = "/") -> h11.Request:
    return h11.Request(method="GET", target=path, headers=[("Host", "x")])


async def test_each_response_is_one_write_on_a_keep_alive_connection() -> None:
    writes: list[RecordingStream] = []
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_one, json_app, writes)
        answers = await exchange(port, [get(), get(), get()])
        nursery.cancel_scope.cancel()
    assert answers == [(202, b'{"status": "accepted"}')] * 3
    (connection,) = writes
    assert len(connection.writes) == 3
    for write in connection.writes:
        assert write.startswith(b"HTTP/1.1 202 ")
        assert write.endswith(b'\r\n\r\n{"status": "accepted"}')


async def test_a_streamed_response_sends_its_head_with_the_first_chunk_then_each_chunk() -> None:
    writes: list[RecordingStream] = []
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_one, streamed_app, writes)
        answers = await exchange(port, [get()])
        nursery.cancel_scope.cancel()
    assert answers == [(200, b"firstsecond")]
    (connection,) = writes
    head_and_first, second, end = connection.writes
    assert head_and_first.startswith(b"HTTP/1.1 200 ")
    assert head_and_first.endswith(b"\r\n\r\n5\r\nfirst\r\n")
    assert second == b"6\r\nsecond\r\n"
    assert end == b"0\r\n\r\n"


async def send_raw(app: Any, payload: bytes) -> tuple[bytes, list[RecordingStream]]:
    """Send raw bytes to ``app``'s server; what came back until it closed, and its writes."""
    writes: list[RecordingStream] = []
    received = b""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_one, app, writes)
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(payload)
            with trio.move_on_after(5):
                while chunk := await stream.receive_some(65536):
                    received += chunk
        nursery.cancel_scope.cancel()
    return received, writes


async def test_a_head_held_for_an_app_that_then_fails_is_still_sent() -> None:
    received, writes = await send_raw(failing_app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 ")
    (connection,) = writes
    assert connection.writes[0].startswith(b"HTTP/1.1 200 ")


async def test_the_servers_own_error_answer_is_still_sent() -> None:
    received, _ = await send_raw(json_app, b"GET\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 ")


async def test_the_gateway_listener_answers_many_requests_on_one_connection() -> None:
    """The listener the gateway runs uses the coalescing server end to end."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            run_http_server, json_app, Config(jwt_secret="x" * 40, http_port=0)
        )
        answers = await exchange(port, [get("/a"), get("/b")])
        nursery.cancel_scope.cancel()
    assert answers == [(202, b'{"status": "accepted"}')] * 2


async def path_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with its path; ``/slow`` after 1.2 s."""
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/slow":
        await trio.sleep(1.2)
    body = scope["path"].encode()
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def test_a_pipelined_request_is_not_cut_by_the_idle_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The keep-alive timer must not run while the next pipelined request is handled."""
    monkeypatch.setattr(server, "KEEP_ALIVE_TIMEOUT_S", 0.5)
    received = b""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            run_http_server, path_app, Config(jwt_secret="x" * 40, http_port=0)
        )
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(
                b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            with trio.move_on_after(10):
                while not received.endswith(b"/slow"):
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    received += chunk
        nursery.cancel_scope.cancel()
    assert received.count(b"HTTP/1.1 200 ") == 2
    assert received.endswith(b"/slow")


async def test_a_held_head_is_sent_when_a_stop_cancels_the_app() -> None:
    """An app cancelled by the end of the grace period still has its head written."""

    async def waits_after_its_head(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await trio.sleep_forever()

    config = Config(jwt_secret="x" * 40, http_port=0, shutdown_grace_s=0.3)
    received = b""
    async with trio.open_nursery() as outer:
        serving = trio.CancelScope()

        async def serve(task_status: trio.TaskStatus[int]) -> None:
            with serving:
                await run_http_server(waits_after_its_head, config, task_status=task_status)

        port = await outer.start(serve)
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await trio.sleep(0.2)
            serving.cancel()
            with trio.move_on_after(10):
                while chunk := await stream.receive_some(65536):
                    received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")


async def test_an_http2_response_larger_than_the_clients_window_arrives() -> None:
    """HTTP/2 is not held: its body waits for window updates the client sends on data."""
    size = 100_000

    async def large(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"%d" % size)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * size})

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    request = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x")]
    client.send_headers(1, request, end_stream=True)
    body, ended = 0, False
    async with trio.open_nursery() as nursery:
        port = await nursery.start(run_http_server, large, Config(jwt_secret="x" * 40, http_port=0))
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(client.data_to_send())
            with trio.move_on_after(10):
                while not ended and (data := await stream.receive_some(65536)):
                    for event in client.receive_data(data):
                        if isinstance(event, h2.events.DataReceived):
                            body += len(event.data)
                            client.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                        ended = ended or isinstance(event, h2.events.StreamEnded)
                    await stream.send_all(client.data_to_send())
        nursery.cancel_scope.cancel()
    assert (body, ended) == (size, True)
