"""The wsproto WebSocket adapter, against a wsproto client over an in-memory stream."""

from __future__ import annotations

import pytest
import trio
import trio.testing
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
from notifactor.edge.ws_connection import (
    WsConnection,
    accept,
    new_handshake,
    read_upgrade,
    refuse,
)


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


async def upgraded(max_bytes: int = 1024) -> tuple[WsConnection, Client]:
    server_stream, client_stream = trio.testing.memory_stream_pair()
    client = Client(client_stream)
    await client.send(Request(host="x", target="/ws?token=t"))
    upgrade = await read_upgrade(server_stream, new_handshake())
    assert upgrade is not None
    assert upgrade.path == "/ws?token=t"
    connection = await accept(server_stream, upgrade, max_message_bytes=max_bytes)
    assert isinstance(await client.next_event(), AcceptConnection)
    return connection, client


async def test_refusal_is_plain_http_with_a_body() -> None:
    server_stream, client_stream = trio.testing.memory_stream_pair()
    client = Client(client_stream)
    await client.send(Request(host="x", target="/nope"))
    upgrade = await read_upgrade(server_stream, new_handshake())
    assert upgrade is not None
    await refuse(server_stream, upgrade.handshake, 404, [(b"X-A", b"1")], b"gone")
    rejected = await client.next_event()
    assert isinstance(rejected, RejectConnection)
    assert rejected.status_code == 404
    assert (b"x-a", b"1") in rejected.headers
    body = await client.next_event()
    assert isinstance(body, RejectData)
    assert body.data == b"gone"


async def test_fragments_pings_and_the_close_handshake() -> None:
    connection, client = await upgraded()
    await client.send(TextMessage(data="hel", message_finished=False))
    await client.send(TextMessage(data="lo", message_finished=True))
    await client.send(Ping(payload=b"p"))
    await client.send(TextMessage(data="next"))
    assert await connection.receive() == "hello"
    assert await connection.receive() == "next"
    assert await client.next_event() == Pong(payload=b"p")
    await connection.send("out")
    assert (await client.next_event()) == TextMessage(data="out")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.ping)
        assert isinstance(await client.next_event(), Ping)
        await client.send(Pong(payload=b"nf"))
        nursery.start_soon(connection.receive)  # the reader sees the pong
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.close, 1001, "bye")
        closing = await client.next_event()
        assert isinstance(closing, CloseConnection)
        assert closing.code == 1001
        await client.send(closing.response())


async def test_oversized_message_closes_1009() -> None:
    connection, client = await upgraded(max_bytes=8)
    await client.send(TextMessage(data="x" * 9))
    with pytest.raises(SocketClosed) as closed:
        await connection.receive()
    assert closed.value.code == 1009
    closing = await client.next_event()
    assert isinstance(closing, CloseConnection)
    assert closing.code == 1009


async def test_peer_close_is_answered_and_reported() -> None:
    connection, client = await upgraded()
    await client.send(CloseConnection(code=1000, reason="done"))
    with pytest.raises(SocketClosed) as closed:
        await connection.receive()
    assert closed.value.code == 1000
    assert isinstance(await client.next_event(), CloseConnection)
