"""The one thing a session needs from a WebSocket: a port, so tests can fake it."""

from __future__ import annotations

from collections.abc import Callable
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

    def watch(self, ready: Callable[[], None]) -> None:
        """Call ``ready()`` whenever :meth:`receive_nowait` has something for the caller.

        That is a client message, or the end of the connection; called at once
        if there is something already. ``ready`` must not wait. Nobody waits
        for client messages: an idle session keeps no task for them.
        """
        ...

    def receive_nowait(self) -> str | bytes | None:
        """The next client message, or ``None`` if none has arrived.

        Raises:
            SocketClosed: the connection is closed and no message is left.
        """
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
