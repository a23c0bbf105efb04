"""The one thing a session needs from a WebSocket: a port, so tests can fake it."""

from __future__ import annotations

from typing import Protocol


class SocketClosed(Exception):
    """The connection is closed (by the peer, by us, or it broke).

    Attributes:
        code: the close code, when one is known.
    """

    def __init__(self, code: int | None = None, reason: str | None = None) -> None:
        super().__init__(f"websocket closed ({code}: {reason or ''})")
        self.code = code
        self.reason = reason


class WebSocket(Protocol):
    """An accepted server-side WebSocket connection."""

    async def receive(self) -> str | bytes:
        """The next message; raises :class:`SocketClosed` once closed."""
        ...

    async def send(self, text: str) -> None:
        """Write one text message; raises :class:`SocketClosed` once closed."""
        ...

    async def ping(self) -> None:
        """Send a ping and return when its pong arrives."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code`` (the TCP connection is closed even if cancelled)."""
        ...
