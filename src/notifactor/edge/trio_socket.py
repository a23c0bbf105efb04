"""Adapter: a trio-websocket connection as a :class:`~notifactor.edge.socket_port.WebSocket`.

trio-websocket does the protocol: its reader task (in the listener's
connections nursery) answers pings, completes the close handshake and
closes with 1009 a message over ``max_message_size``. This adapter only
translates its ``ConnectionClosed`` into :class:`SocketClosed` and makes
``close`` keep the port's promise that the TCP connection ends.

Once a connection is accepted, the adapter also lets wsproto forget the
HTTP upgrade (:func:`forget_upgrade`): an idle session would otherwise keep
the upgrade's HTTP parser, request and buffers, about 3 KB, for as long as
the socket stays open.
"""

from __future__ import annotations

from collections.abc import Iterator

import trio
import wsproto
from trio_websocket import ConnectionClosed, WebSocketConnection
from wsproto.events import Event

from notifactor.edge.socket_port import SocketClosed

CLOSE_REASON_CHARS = 120
"""A close frame's reason is at most 123 bytes; ours are ASCII."""


class TrioWebSocket:
    """An accepted trio-websocket connection behind the session's port.

    Args:
        connection: the accepted connection.
        stream: its transport, closed by :meth:`close` even when trio-websocket
            already considers the connection closed (after a 1009 or the
            peer's close it returns from ``aclose`` at once, stream open).
    """

    __slots__ = ("_connection", "_stream")

    def __init__(self, connection: WebSocketConnection, stream: trio.abc.Stream) -> None:
        self._connection = connection
        self._stream = stream
        forget_upgrade(connection)

    async def receive(self) -> str | bytes:
        try:
            return await self._connection.get_message()
        except ConnectionClosed as closed:
            raise _closed(closed) from None

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


def forget_upgrade(connection: WebSocketConnection) -> None:
    """Drop the finished HTTP handshake of an accepted connection (memory only).

    trio-websocket offers no way to do this, hence the look at its wsproto
    connection; if that is not there (another trio-websocket version), or
    the upgrade is not over, nothing changes.
    """
    protocol = getattr(connection, "_wsproto", None)
    if isinstance(protocol, wsproto.WSConnection) and protocol.connection is not None:
        protocol.handshake = _UPGRADE_OVER  # type: ignore[assignment]
