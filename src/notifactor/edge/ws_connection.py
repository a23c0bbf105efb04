"""Adapter: a server-side WebSocket on a Trio stream, with wsproto and no task of its own.

trio-websocket gives every connection a background reader task, a message
channel, a send lock and half a dozen events, and keeps the HTTP handshake
objects alive for the connection's life: about a third of what an idle
session cost. Here the session's own reader task drives the protocol
(:meth:`WsConnection.receive` reads the stream, answers pings, completes the
close handshake), the handshake object is dropped once the upgrade is done,
and anything else (an event for a pong, a wait for a busy sender) is created
only when needed.

The upgrade itself is three steps the listener calls: :func:`read_upgrade`,
then :func:`accept` or :func:`refuse`.
"""

from __future__ import annotations

import contextlib

import attrs
import trio
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from notifactor.edge.socket_port import SocketClosed

RECEIVE_BYTES = 16 * 1024
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009
CLOSE_ABNORMAL = 1006

UpgradeError = RemoteProtocolError
"""A request that is not a WebSocket upgrade (answer 400 with :func:`refuse`)."""


@attrs.frozen(kw_only=True)
class Upgrade:
    """A WebSocket upgrade request, not yet answered."""

    handshake: H11Handshake
    path: str
    headers: list[tuple[bytes, bytes]]


def new_handshake() -> H11Handshake:
    return H11Handshake(ConnectionType.SERVER)


async def read_upgrade(stream: trio.abc.Stream, handshake: H11Handshake) -> Upgrade | None:
    """Read the upgrade request; ``None`` if the peer left first.

    Raises:
        UpgradeError: not a valid WebSocket upgrade request (h11 bounds the
            header size, so this never buffers without limit).
    """
    while True:
        for event in handshake.events():
            if isinstance(event, Request):
                return Upgrade(
                    handshake=handshake, path=event.target, headers=list(event.extra_headers)
                )
        data = await stream.receive_some(RECEIVE_BYTES)
        if not data:
            return None
        handshake.receive_data(bytes(data))


async def refuse(
    stream: trio.abc.Stream,
    handshake: H11Handshake,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    """Answer the upgrade request with a plain HTTP response (the caller closes)."""
    length = (b"Content-Length", str(len(body)).encode())
    data = handshake.send(
        RejectConnection(status_code=status, headers=[*headers, length], has_body=True)
    )
    data += handshake.send(RejectData(data=body, body_finished=True))
    await stream.send_all(data)


async def accept(
    stream: trio.abc.Stream, upgrade: Upgrade, *, max_message_bytes: int
) -> WsConnection:
    """Complete the upgrade; from here on only the frame protocol is kept."""
    await stream.send_all(upgrade.handshake.send(AcceptConnection()))
    connection = upgrade.handshake.connection
    assert connection is not None  # set by AcceptConnection
    return WsConnection(stream, connection, max_message_bytes=max_message_bytes)


class WsConnection:
    """An open WebSocket; implements :class:`~notifactor.edge.socket_port.WebSocket`.

    One task receives (the session's reader), any task may send; sends are
    serialized here because a Trio stream allows one sender at a time.
    """

    __slots__ = (
        "_closed",
        "_max_bytes",
        "_parts",
        "_pong",
        "_proto",
        "_send_done",
        "_sending",
        "_size",
        "_stream",
    )

    def __init__(
        self, stream: trio.abc.Stream, proto: Connection, *, max_message_bytes: int
    ) -> None:
        self._stream = stream
        self._proto = proto
        self._max_bytes = max_message_bytes
        self._parts: list[str | bytes] | None = None
        self._size = 0
        self._pong: trio.Event | None = None
        self._sending = False
        self._send_done: trio.Event | None = None
        self._closed: SocketClosed | None = None

    async def receive(self) -> str | bytes:
        """The next message; answers pings and close frames on the way."""
        while True:
            if self._closed is not None:
                raise self._closed
            message = await self._next_event()
            if message is not None:
                return message

    async def send(self, text: str) -> None:
        await self._send_event(TextMessage(data=text))

    async def ping(self) -> None:
        """Send a ping and wait for the pong (the reader task sees it)."""
        pong = self._pong
        if pong is None:
            pong = self._pong = trio.Event()
            await self._send_event(Ping(payload=b"nf"))
        await pong.wait()

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame, wait (caller's deadline) for the peer's, close TCP."""
        try:
            if self._proto.state is ConnectionState.OPEN:
                await self._send_event(CloseConnection(code=code, reason=reason[:120]))
                while self._closed is None and not self._closed_by_protocol():
                    await self._next_event()
        except SocketClosed:
            pass
        finally:
            self._closed = self._closed or SocketClosed(code, reason)
            await self._stream.aclose()

    # --- internals -----------------------------------------------------------

    def _closed_by_protocol(self) -> bool:
        return self._proto.state is ConnectionState.CLOSED

    async def _next_event(self) -> str | bytes | None:
        """Handle one batch of incoming bytes; a complete message if there is one."""
        for event in self._proto.events():
            message = await self._on_event(event)
            if message is not None:
                return message
        try:
            data = await self._stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self._closed = SocketClosed(CLOSE_ABNORMAL, "connection lost")
            raise self._closed
        try:
            self._proto.receive_data(bytes(data))
        except (RemoteProtocolError, LocalProtocolError) as error:
            await self._fail(CLOSE_PROTOCOL_ERROR, f"protocol error: {error}")
        return None

    async def _on_event(self, event: Event) -> str | bytes | None:
        match event:
            case Message(data=data, message_finished=finished):
                return await self._on_data(data, finished)
            case Ping():
                await self._send_event(event.response())
            case Pong():
                if self._pong is not None:
                    pong, self._pong = self._pong, None
                    pong.set()
            case CloseConnection(code=code, reason=reason):
                if self._proto.state is ConnectionState.REMOTE_CLOSING:
                    await self._send_quietly(event.response())
                self._closed = SocketClosed(code, reason)
                raise self._closed
        return None

    async def _on_data(self, data: str | bytes, finished: bool) -> str | bytes | None:
        self._size += len(data)
        if self._size > self._max_bytes:
            await self._fail(CLOSE_TOO_BIG, "message too big")
        if finished and self._parts is None:
            self._size = 0
            return data
        if self._parts is None:
            self._parts = []
        self._parts.append(data)
        if not finished:
            return None
        parts, self._parts, self._size = self._parts, None, 0
        if isinstance(data, str):
            return "".join(part for part in parts if isinstance(part, str))
        return b"".join(part for part in parts if isinstance(part, bytes))

    async def _fail(self, code: int, reason: str) -> None:
        """Close with ``code`` because of the peer, then raise :class:`SocketClosed`."""
        await self._send_quietly(CloseConnection(code=code, reason=reason[:120]))
        self._closed = SocketClosed(code, reason)
        raise self._closed

    async def _send_quietly(self, event: Event) -> None:
        with contextlib.suppress(SocketClosed):
            await self._send_event(event)

    async def _send_event(self, event: Event) -> None:
        while self._sending:
            if self._send_done is None:
                self._send_done = trio.Event()
            await self._send_done.wait()
        if self._closed is not None and not isinstance(event, CloseConnection):
            raise self._closed
        try:
            data = self._proto.send(event)
        except LocalProtocolError:
            raise self._closed or SocketClosed(CLOSE_ABNORMAL, "connection closing") from None
        self._sending = True
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._closed = self._closed or SocketClosed(CLOSE_ABNORMAL, "connection lost")
            raise self._closed from None
        finally:
            self._sending = False
            if self._send_done is not None:
                done, self._send_done = self._send_done, None
                done.set()
