"""The trio-websocket adapter, against a wsproto client over an in-memory stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from trio_websocket import wrap_server_stream
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from notifactor.edge.socket_port import SocketClosed
from notifactor.edge.trio_socket import EARLY_BYTES_LIMIT, TrioWebSocket, open_server_connection


class Client:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def next_event(self) -> Event:
        while True:
            for event in self.ws.events():
                return event
            with trio.fail_after(5):
                data = await self.stream.receive_some(65536)
            self.ws.receive_data(bytes(data) if data else None)

    async def wait_eof(self) -> None:
        with trio.fail_after(5):
            while await self.stream.receive_some(65536):
                pass


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


async def upgraded(nursery: trio.Nursery, max_bytes: int = 1024) -> tuple[TrioWebSocket, Client]:
    server_stream, client_stream = trio.testing.memory_stream_pair()
    client = Client(client_stream)
    await client.send(Request(host="x", target="/ws?token=t"))
    upgrade = await open_server_connection(nursery, server_stream, max_message_size=max_bytes)
    assert upgrade.request.path == "/ws?token=t"  # the query is part of the path
    socket = TrioWebSocket(await upgrade.request.accept(), upgrade)
    assert isinstance(await client.next_event(), AcceptConnection)
    return socket, client


async def receive(socket: TrioWebSocket) -> str | bytes:
    """Wait for the next client message the way a session does: called back, then take it."""
    ready = trio.Event()
    socket.watch(ready.set)
    with trio.fail_after(5):
        while (message := socket.receive_nowait()) is None:
            await ready.wait()
            ready = trio.Event()
            socket.watch(ready.set)
    return message


async def test_refusal_is_plain_http_with_a_body(nursery: trio.Nursery) -> None:
    server_stream, client_stream = trio.testing.memory_stream_pair()
    client = Client(client_stream)
    await client.send(Request(host="x", target="/nope"))
    request = await wrap_server_stream(nursery, server_stream)
    await request.reject(404, extra_headers=[(b"X-A", b"1")], body=b"gone")
    rejected = await client.next_event()
    assert isinstance(rejected, RejectConnection)
    assert rejected.status_code == 404
    assert (b"x-a", b"1") in rejected.headers
    body = await client.next_event()
    assert isinstance(body, RejectData)
    assert body.data == b"gone"


async def test_fragments_pings_and_the_close_handshake(nursery: trio.Nursery) -> None:
    socket, client = await upgraded(nursery)
    await client.send(TextMessage(data="hel", message_finished=False))
    await client.send(TextMessage(data="lo", message_finished=True))
    await client.send(Ping(payload=b"p"))
    await client.send(TextMessage(data="next"))
    assert await receive(socket) == "hello"
    assert await receive(socket) == "next"
    assert await client.next_event() == Pong(payload=b"p")
    await socket.send("out")
    assert (await client.next_event()) == TextMessage(data="out")
    async with trio.open_nursery() as pinging:
        pinging.start_soon(socket.ping)
        ping = await client.next_event()
        assert isinstance(ping, Ping)
        await client.send(ping.response())  # the ping returns once its pong is in
    async with trio.open_nursery() as closing_nursery:
        closing_nursery.start_soon(socket.close, 1001, "bye")
        closing = await client.next_event()
        assert isinstance(closing, CloseConnection)
        assert closing.code == 1001
        await client.send(closing.response())
    await client.wait_eof()
    with pytest.raises(SocketClosed):
        await socket.send("late")


async def test_oversized_message_closes_1009_and_the_tcp_connection(
    nursery: trio.Nursery,
) -> None:
    socket, client = await upgraded(nursery, max_bytes=8)
    await client.send(TextMessage(data="x" * 9))
    with pytest.raises(SocketClosed) as closed:
        await receive(socket)
    assert closed.value.code == 1009
    closing = await client.next_event()
    assert isinstance(closing, CloseConnection)
    assert closing.code == 1009
    await socket.close(1009, "message too big")  # what the session does next
    await client.wait_eof()


async def test_peer_close_is_answered_and_reported(nursery: trio.Nursery) -> None:
    socket, client = await upgraded(nursery)
    await client.send(CloseConnection(code=1000, reason="done"))
    with pytest.raises(SocketClosed) as closed:
        await receive(socket)
    assert closed.value.code == 1000
    assert isinstance(await client.next_event(), CloseConnection)


async def test_close_ends_the_tcp_connection_when_the_peer_never_answers(
    nursery: trio.Nursery,
) -> None:
    socket, client = await upgraded(nursery)
    with trio.move_on_after(0.2):  # the session's close budget
        await socket.close(1001, "bye")
    closing = await client.next_event()
    assert isinstance(closing, CloseConnection)
    await client.wait_eof()


async def test_a_flood_arrives_whole_and_in_order_one_message_at_a_time(
    nursery: trio.Nursery,
) -> None:
    socket, client = await upgraded(nursery)
    for index in range(200):
        await client.send(TextMessage(data=f"m{index}"))
    await trio.testing.wait_all_tasks_blocked()
    first = socket.receive_nowait()
    assert first == "m0"
    # One message is handed over at a time: the reader holds the next one back.
    assert socket.receive_nowait() is None
    received = [first] + [await receive(socket) for _ in range(199)]
    assert received == [f"m{index}" for index in range(200)]


async def test_a_protocol_error_ends_the_session_without_a_waiting_reader(
    nursery: trio.Nursery,
) -> None:
    socket, client = await upgraded(nursery)
    ended = trio.Event()
    socket.watch(ended.set)
    await client.stream.send_all(b"\x8f\x00")  # an unknown opcode
    with trio.fail_after(5):
        await ended.wait()
    with pytest.raises(SocketClosed):
        socket.receive_nowait()


async def test_an_open_connection_forgets_its_upgrade_target_and_its_token(
    nursery: trio.Nursery,
) -> None:
    socket, _ = await upgraded(nursery)
    assert socket._connection.path == "/ws"  # the query, with its token, is gone


async def test_a_reader_holding_frames_ends_when_a_write_finds_the_connection_broken() -> None:
    """Frames nobody takes, then the client vanishes: the reader must not outlive it."""
    with trio.fail_after(5):
        async with trio.open_nursery() as reader_nursery:
            socket, client = await upgraded(reader_nursery)
            for index in range(3):  # one held, the reader waits to hand over the next
                await client.send(TextMessage(data=f"m{index}"))
            await trio.testing.wait_all_tasks_blocked()
            await client.stream.aclose()  # gone, no close frame
            with pytest.raises(SocketClosed):
                await socket.ping()  # the heartbeat's write finds it broken
            # The session ends without taking the held frame (its answer task
            # was busy, then cancelled), and closes the socket.
            await socket.close(1006, "gone")
        # The nursery is done: trio-websocket's reader task ended.
    with pytest.raises(SocketClosed):
        socket.receive_nowait()


async def test_a_client_sending_a_flood_before_its_upgrade_is_answered_is_cut_off(
    nursery: trio.Nursery,
) -> None:
    """Nothing may come before the 101 (RFC 6455 §4.1); the parser would buffer it all."""
    server_stream, client_stream = trio.testing.memory_stream_pair()
    client = Client(client_stream)
    await client.send(Request(host="x", target="/ws?token=t"))
    with trio.fail_after(5):
        async with trio.open_nursery() as reader_nursery:
            upgrade = await open_server_connection(
                reader_nursery, server_stream, max_message_size=1024
            )
            # While the upgrade waits for its answer (a slow Redis), the client floods.
            for _ in range(EARLY_BYTES_LIMIT // 65536 + 2):
                await client_stream.send_all(b"\0" * 65536)
        # The reader gave up on the connection instead of buffering it all.
    assert upgrade.request.path == "/ws?token=t"
