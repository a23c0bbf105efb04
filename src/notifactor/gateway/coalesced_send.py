"""One socket write per HTTP response instead of three, and one read-timeout scope per connection.

hypercorn's HTTP/1.1 protocol writes a response as it is produced: the
status line and headers when the app sends ``http.response.start``, the body
when it sends ``http.response.body``, then the end of the message (empty
for a response with a ``content-length``). Each is its own ``send_all`` on
the socket: two ``send`` system calls and two TCP segments for one small
JSON answer, plus the lock and shield of a third write with nothing in it.

:class:`CoalescingTCPServer` is hypercorn's per-connection ``TCPServer``
with its writes held from the app's ``http.response.start`` until the app's
next message has been handled, then sent as one write. What goes out, and
in which order, is unchanged:

* writes that are not part of an app's response (hypercorn's own error
  answers, a WebSocket upgrade) are sent at once, as before;
* only HTTP/1.x responses are held: an HTTP/2 body waits for the client's
  flow-control window, which the client opens only once it has data;
* a streamed response (``more_body``) still goes out chunk by chunk: only
  the head waits, for its first chunk. The one thing that changes: an app
  that sends ``http.response.start`` and then waits before its first body
  chunk (a long poll) has its head sent with that chunk, not before;
* the held bytes are sent even when the app fails or is cancelled after
  ``http.response.start`` (the write is shielded, as hypercorn's own are);
* before the connection is closed, the held bytes go out. The keep-alive
  state changes (``Updated``) are passed on at once, in the order hypercorn
  makes them: a write in between would let the connection's reader start a
  pipelined request first, and the idle timer would then run during it;
* empty writes are dropped (they sent nothing; they only took the lock).

Its read loop is hypercorn's too, except that the read timeout is one cancel
scope for the connection whose deadline moves with each read, instead of a
new ``fail_after`` scope per read (see :meth:`CoalescingTCPServer._read_data`).
"""

from __future__ import annotations

import math
from typing import Any

import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState


class CoalescingTCPServer(TCPServer):
    """``TCPServer`` whose app's response head and first body chunk share one write."""

    def __init__(
        self,
        app: Any,
        config: HypercornConfig,
        context: WorkerContext,
        state: ConnectionState,
        stream: trio.SocketStream,
    ) -> None:
        super().__init__(_HoldingApp(app, self), config, context, state, stream)  # type: ignore[arg-type]
        self._held: list[bytes] = []
        self._holding = False

    def hold(self) -> None:
        """Keep this connection's writes until :meth:`flush`."""
        self._holding = True

    async def flush(self) -> None:
        """Send what was held, as one write, and stop holding (shielded: never lost).

        hypercorn's own write of ``RawData``, with its shield widened to take
        the send lock too (one cancel scope instead of one inside another).
        """
        self._holding = False
        if self._held:
            data = b"".join(self._held)
            self._held = []
            with trio.CancelScope(shield=True):
                async with self.send_lock:
                    try:
                        await self.stream.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        await self.protocol.handle(Closed())

    async def _read_data(self) -> None:
        """hypercorn's read loop, with one read-timeout scope for the connection.

        hypercorn opens a new ``fail_after(read_timeout)`` for every read,
        which on a keep-alive connection means one cancel scope with a
        deadline per request. Here a scope lasts until the connection ends
        and only its deadline moves: ``read_timeout`` from the start of each
        read, none while the data read is handled. What a client sees is the
        same: a read that takes longer than ``read_timeout`` ends the
        connection, and data whose read completed as the timeout fell is
        still handled (as hypercorn does: its timeout fires only if the read
        was interrupted).
        """
        timeout = self.config.read_timeout or math.inf
        while await self._read_under_one_scope(read_timeout_s=timeout):
            pass
        await self.protocol.handle(Closed())

    async def _read_under_one_scope(self, *, read_timeout_s: float) -> bool:
        """Read and handle until the connection ends or a read times out (False).

        True: a read completed just as the scope's deadline fell. That scope
        is cancelled for good, so its data is handled outside it, and the
        caller reads on under a fresh one.
        """
        with trio.CancelScope() as reading:
            while True:
                reading.deadline = trio.current_time() + read_timeout_s
                try:
                    data = await self.stream.receive_some(MAX_RECV)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    return False
                if reading.cancel_called:
                    break
                reading.deadline = math.inf
                await self.protocol.handle(RawData(bytes(data)))
                if data == b"":
                    return False
        if reading.cancelled_caught:
            return False  # the read timed out
        await self.protocol.handle(RawData(bytes(data)))
        return data != b""

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            if not event.data:
                return
            if self._holding:
                self._held.append(event.data)
                return
        elif isinstance(event, Closed) and self._held:
            await self.flush()  # what the app sent goes out before the connection closes
        await super().protocol_send(event)


class _HoldingApp(ASGIWrapper):
    """The ASGI app, with each HTTP response's head held for its first body write."""

    def __init__(self, app: Any, server: CoalescingTCPServer) -> None:
        super().__init__(app)
        self._server = server

    async def __call__(
        self, scope: Any, receive: Any, send: Any, sync_spawn: Any, call_soon: Any
    ) -> None:
        if scope["type"] != "http" or not str(scope.get("http_version", "")).startswith("1."):
            await self.app(scope, receive, send)
            return
        server = self._server

        async def send_held(message: Any) -> None:
            if message["type"] == "http.response.start":
                server.hold()
                await send(message)
                return
            try:
                await send(message)
            finally:
                await server.flush()

        try:
            await self.app(scope, receive, send_held)
        finally:
            await server.flush()
