"""Adapter: a trio-websocket connection as a :class:`~notifactor.edge.socket_port.WebSocket`.

trio-websocket does the protocol: its reader task (in the listener's
connections nursery) answers pings, completes the close handshake and
closes with 1009 a message over ``max_message_size``. This adapter
translates its ``ConnectionClosed`` into :class:`SocketClosed`, makes
``close`` keep the port's promise that the TCP connection ends, and hands
client messages over without a waiting task
(:mod:`~notifactor.edge.message_handoff`, installed by
:func:`open_server_connection`).

Once a connection is accepted, the adapter also lets wsproto forget the
HTTP upgrade (:func:`forget_upgrade`): an idle session would otherwise keep
the upgrade's HTTP parser, request and buffers, about 3 KB, for as long as
the socket stays open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import trio
import wsproto
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.events import Event

from notifactor.edge.message_handoff import HandoffClosed, MessageHandoff
from notifactor.edge.socket_port import SocketClosed

CLOSE_REASON_CHARS = 120
"""A close frame's reason is at most 123 bytes; ours are ASCII."""


EARLY_BYTES_LIMIT = 256 * 1024
"""Most bytes a client may send before its upgrade is answered (the request included)."""


class UpgradeStream(trio.abc.Stream):
    """The connection's transport as trio-websocket reads it.

    trio-websocket's reader keeps reading while the upgrade request waits
    for its answer (the tenant's connection count, up to
    ``admission_timeout_s`` when Redis is slow), and everything a client
    sends then piles up in the HTTP parser's buffer. A client may not send
    before the ``101`` (RFC 6455 §4.1): one that sends more than
    :data:`EARLY_BYTES_LIMIT` bytes before it is treated as a broken
    connection instead.
    """

    __slots__ = ("_early", "_stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._early: int | None = 0  # None once the upgrade is answered

    @property
    def overflowed(self) -> bool:
        """Whether the client sent too much before its answer (the connection is closed)."""
        return self._early is not None and self._early > EARLY_BYTES_LIMIT

    def answered(self) -> None:
        """The upgrade was accepted: the client may send what it likes from now on."""
        self._early = None

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self._stream.receive_some(max_bytes)
        if self._early is not None:
            self._early += len(data)
            if self._early > EARLY_BYTES_LIMIT:
                # Closed at once: trio-websocket's reader takes this for a
                # broken connection and ends; the upgrade is not answered.
                await self._stream.aclose()
                raise trio.BrokenResourceError("the client sent too much before its upgrade")
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


@attrs.frozen
class Upgrade:
    """An upgrade request read by :func:`open_server_connection`, with what accepting it needs."""

    request: WebSocketRequest
    messages: MessageHandoff
    transport: UpgradeStream


async def open_server_connection(
    nursery: trio.Nursery, stream: trio.abc.Stream, *, max_message_size: int
) -> Upgrade:
    """Read the upgrade request on ``stream``; the reader task runs in ``nursery``.

    What ``trio_websocket.wrap_server_stream`` does, with two differences:
    the stream is read through an :class:`UpgradeStream`, and before the
    reader task starts, client messages are routed to a
    :class:`MessageHandoff` instead of trio-websocket's message channel (its
    reader task looks that channel up by attribute, so the handoff stands
    in for both of its ends). Hand both to :class:`TrioWebSocket`.
    """
    transport = UpgradeStream(stream)
    connection = WebSocketConnection(
        transport, WSConnection(ConnectionType.SERVER), max_message_size=max_message_size
    )
    handoff = MessageHandoff()
    channels: Any = connection  # private attributes, see the docstring
    channels._send_channel = handoff.sender
    channels._recv_channel = handoff.receiver
    nursery.start_soon(connection._reader_task)
    return Upgrade(await connection._get_request(), handoff, transport)


class TrioWebSocket:
    """An accepted trio-websocket connection behind the session's port.

    Args:
        connection: the accepted connection.
        upgrade: what :func:`open_server_connection` returned for it. Its
            transport is closed by :meth:`close` even when trio-websocket
            already considers the connection closed (after a 1009 or the
            peer's close it returns from ``aclose`` at once, stream open).
    """

    __slots__ = ("_connection", "_messages", "_stream")

    def __init__(self, connection: WebSocketConnection, upgrade: Upgrade) -> None:
        self._connection = connection
        self._stream = upgrade.transport
        self._messages = upgrade.messages
        upgrade.transport.answered()
        forget_upgrade(connection)

    def watch(self, ready: Callable[[], None]) -> None:
        self._messages.watch(ready)

    def receive_nowait(self) -> str | bytes | None:
        try:
            return self._messages.take()
        except HandoffClosed:
            reason = self._connection.closed
            if reason is None:
                raise SocketClosed() from None
            raise SocketClosed(reason.code, reason.reason) from None

    async def send(self, text: str) -> None:
        try:
            await self._connection.send_message(text)
        except ConnectionClosed as closed:
            raise _closed(closed) from None

    async def ping(self) -> None:
        """Send a ping and wait for its pong (trio-websocket's reader sees it)."""
        try:
            await self._connection.ping()
        except ConnectionClosed as closed:
            raise _closed(closed) from None

    async def close(self, code: int, reason: str) -> None:
        """Close handshake within the caller's deadline, then the TCP connection."""
        try:
            await self._connection.aclose(code, reason[:CLOSE_REASON_CHARS])
        finally:
            # trio-websocket drops what its reader holds only when its close
            # frame went out: a reader waiting to hand over a message must
            # not outlive the connection either way.
            self._messages.drop()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self._stream)


def _closed(closed: ConnectionClosed) -> SocketClosed:
    reason = closed.reason
    if reason is None:
        return SocketClosed()
    return SocketClosed(reason.code, reason.reason)


class _UpgradeOver:
    """Stands in for wsproto's HTTP handshake once the connection is open.

    ``wsproto.WSConnection`` only asks its handshake for ``events()`` once
    its WebSocket ``connection`` exists, and a server's handshake has none
    left after the upgrade request it was accepted for.
    """

    __slots__ = ()

    def events(self) -> Iterator[Event]:
        return iter(())


_UPGRADE_OVER = _UpgradeOver()

_OPENED = trio.Event()
"""Stands in for the open-handshake event of every accepted connection: set, and
nobody waits for it on a server once the connection is accepted."""
_OPENED.set()

_UNWATCHED = trio.Event()
"""Stands in for trio-websocket's event that only its own tests wait for."""


def forget_upgrade(connection: WebSocketConnection) -> None:
    """Drop what an accepted connection keeps of its finished upgrade (memory only).

    That is wsproto's HTTP handshake, the request target's query (it may
    carry the client's token) and two events nobody waits for on an open
    server connection, about 1 KB per idle session in all. trio-websocket
    offers no way to do this, hence the look at its private attributes;
    where one is not as expected (another trio-websocket version, or the
    upgrade is not over), it is left alone.
    """
    protocol = getattr(connection, "_wsproto", None)
    if not isinstance(protocol, wsproto.WSConnection) or protocol.connection is None:
        return
    protocol.handshake = _UPGRADE_OVER  # type: ignore[assignment]
    state: Any = connection
    path = getattr(state, "_path", None)
    if isinstance(path, str):
        state._path = path.partition("?")[0]
    opened = getattr(state, "_open_handshake", None)
    if isinstance(opened, trio.Event) and opened.is_set():
        state._open_handshake = _OPENED
    if isinstance(getattr(state, "_for_testing_peer_closed_connection", None), trio.Event):
        state._for_testing_peer_closed_connection = _UNWATCHED
