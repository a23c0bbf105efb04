"""Adapter: a trio-websocket connection as a :class:`~notifactor.edge.socket_port.WebSocket`."""

from __future__ import annotations

from trio_websocket import ConnectionClosed, WebSocketConnection

from notifactor.edge.socket_port import SocketClosed


class TrioWebSocket:
    """Translates trio-websocket's ``ConnectionClosed`` into :class:`SocketClosed`."""

    __slots__ = ("_connection",)

    def __init__(self, connection: WebSocketConnection) -> None:
        self._connection = connection

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
        try:
            await self._connection.ping()
        except ConnectionClosed as closed:
            raise _closed(closed) from None

    async def close(self, code: int, reason: str) -> None:
        await self._connection.aclose(code, reason[:120])


def _closed(closed: ConnectionClosed) -> SocketClosed:
    reason = closed.reason
    if reason is None:
        return SocketClosed()
    return SocketClosed(reason.code, reason.reason)
