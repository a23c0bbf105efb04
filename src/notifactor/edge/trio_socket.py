"""Adapter: a trio-websocket connection as a :class:`~notifactor.edge.socket_port.WebSocket`.

trio-websocket does the protocol: its reader task (in the listener's
per-connection nursery) answers pings, completes the close handshake and
closes with 1009 a message over ``max_message_size``. This adapter only
translates its ``ConnectionClosed`` into :class:`SocketClosed` and makes
``close`` keep the port's promise that the TCP connection ends.
"""

from __future__ import annotations

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

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
