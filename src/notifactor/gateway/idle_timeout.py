"""The keep-alive idle timeout of one HTTP connection, as one task with a movable deadline.

hypercorn's Trio ``TCPServer`` keeps an idle task per connection and, on
every request of a keep-alive connection, cancels it when the request
starts and starts a new one (``nursery.start``) when the response is done.
:class:`IdleTimeout` has the same two methods but starts its watcher once
and afterwards only moves a deadline, which costs next to nothing. What it
does is unchanged:

* an idle connection is closed after ``keep_alive_timeout``;
* when the server stops (``context.terminated``), an idle connection is
  closed at once, and a busy one as soon as its response is out.

The watcher runs in a nursery of the caller's (one per connection), not in
hypercorn's task group, so a connection that ends while busy is never held
open by it: the caller cancels that nursery when ``TCPServer.run`` returns.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import trio


class _Server(Protocol):
    async def _initiate_server_close(self) -> None: ...


class _Terminated(Protocol):
    async def wait(self) -> None: ...


class IdleTimeout:
    """Drop-in for ``TCPServer.idle_task`` (``restart`` when idle, ``stop`` when busy)."""

    def __init__(
        self,
        server: _Server,
        terminated: _Terminated,
        timeout_s: float,
        nursery: trio.Nursery,
    ) -> None:
        self._server = server
        self._terminated = terminated
        self._timeout_s = timeout_s
        self._nursery = nursery
        self._scope: trio.CancelScope | None = None
        self._busy = False

    async def restart(self, task_group: Any, action: Any) -> None:
        """The connection is idle: close it ``timeout_s`` from now unless a request comes."""
        self._busy = False
        deadline = trio.current_time() + self._timeout_s
        if self._scope is None:
            self._scope = trio.CancelScope(deadline=deadline)
            self._nursery.start_soon(self._watch, self._scope)
        else:
            self._scope.deadline = deadline

    async def stop(self) -> None:
        """A request is in flight: no idle deadline until it is answered."""
        self._busy = True
        if self._scope is not None:
            self._scope.deadline = math.inf

    async def _watch(self, scope: trio.CancelScope) -> None:
        with scope:
            await self._terminated.wait()
        if self._busy and not scope.cancelled_caught:
            # The server stops during a request: the next ``restart`` (the
            # response is out) starts a watcher that finds it stopped.
            self._scope = None
            return
        with trio.CancelScope(shield=True):
            await self._server._initiate_server_close()
