"""Client messages handed from trio-websocket's reader task to a session, with no task waiting.

trio-websocket puts each message a client sends into a memory channel and
expects a task to wait on it (``get_message``). On an idle session that
waiting task and the channel are about a fifth of what the session costs,
and a gateway holds tens of thousands of idle sessions.

:class:`MessageHandoff` takes the channel's place (see
:func:`~notifactor.edge.trio_socket.open_server_connection`). Like the
channel it replaces (trio-websocket's default size), it holds one message at
a time and makes the reader task wait while that message is not taken, so a
client that floods the server is held back by TCP, not buffered. Instead of
waking a waiting task it calls ``ready()``: the session starts a task to take
and answer messages only while there are some.

The two ends keep the channel's meaning:

* the reader task's end (``sender``) closes when the reader is done (the
  peer closed, the connection broke, a protocol error): a message already
  handed over is still taken, then the handoff reports the end;
* the other end (``receiver``) closes when the connection is closed locally
  (or a message was too big): what is held is dropped at once.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import trio


class HandoffClosed(Exception):
    """Nothing more will come: the connection is closed."""


def _nobody() -> None:
    pass


class MessageHandoff:
    """One client message at a time, from trio-websocket's reader to whoever watches.

    Attributes:
        sender: stands in for trio-websocket's send channel.
        receiver: stands in for its receive channel.
    """

    __slots__ = ("_dropped", "_ended", "_message", "_ready", "_room", "receiver", "sender")

    def __init__(self) -> None:
        self._message: str | bytes | None = None
        self._ended = False  # the reader is done: nothing more will be put
        self._dropped = False  # closed locally: nothing more will be taken
        self._ready: Callable[[], None] = _nobody
        self._room: trio.Event | None = None  # created only while the reader waits
        self.sender = _Sender(self)
        self.receiver = _Receiver(self)

    def watch(self, ready: Callable[[], None]) -> None:
        """Call ``ready()`` whenever :meth:`take` has something: a message, or the end.

        Called at once if it has something already. ``ready`` must not wait:
        it runs in the reader task.
        """
        self._ready = ready
        if self._message is not None or self._ended or self._dropped:
            ready()

    def take(self) -> str | bytes | None:
        """The message handed over, or ``None`` if none is waiting.

        Raises:
            HandoffClosed: nothing more will come.
        """
        if self._dropped:
            raise HandoffClosed
        message = self._message
        if message is None:
            if self._ended:
                raise HandoffClosed
            return None
        self._message = None
        self._make_room()
        return message

    async def put(self, message: str | bytes) -> None:
        """Hand ``message`` over, once the one before it is taken (the reader task).

        Raises:
            trio.BrokenResourceError: the connection was closed locally; the
                message is dropped (trio-websocket expects this).
            trio.ClosedResourceError: the reader's end was closed, before or
                while this waited for room.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._message is not None and not (self._dropped or self._ended):
            if self._room is None:
                self._room = trio.Event()
            await self._room.wait()
        if self._dropped:
            raise trio.BrokenResourceError("the connection was closed locally")
        if self._ended:
            raise trio.ClosedResourceError("the reader's end is closed")
        self._message = message
        self._ready()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def end(self) -> None:
        """The reader is done: what was handed over is still taken, then the end.

        A put waiting for room fails (trio-websocket closes this end from
        another task when a write finds the connection broken, while its
        reader may be waiting here).
        """
        if not self._ended:
            self._ended = True
            self._make_room()
            self._ready()

    def drop(self) -> None:
        """Closed locally: drop what is held and report the end."""
        if not self._dropped:
            self._dropped = True
            self._message = None
            self._make_room()
            self._ready()

    def _make_room(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None


class _Sender:
    """trio-websocket's reader task sees this as its send channel."""

    __slots__ = ("_handoff",)

    def __init__(self, handoff: MessageHandoff) -> None:
        self._handoff = handoff

    async def send(self, message: str | bytes) -> None:
        await self._handoff.put(message)

    async def aclose(self) -> None:
        self._handoff.end()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> _Sender:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._handoff.end()


class _Receiver:
    """trio-websocket closes this when the connection is closed locally."""

    __slots__ = ("_handoff",)

    def __init__(self, handoff: MessageHandoff) -> None:
        self._handoff = handoff

    async def aclose(self) -> None:
        self._handoff.drop()
        await trio.lowlevel.checkpoint()
