"""The keep-alive idle timeout of one HTTP connection, as one task with a movable deadline.

hypercorn's Trio ``TCPServer`` keeps an idle task per connection and, on
every request of a keep-alive connection, cancels it when the request
starts and starts a new one (``nursery.start``) when the response is done.
:class:`IdleTimeout` has the same two methods but starts its task once and
afterwards only moves a deadline, which costs next to nothing. What it does
is unchanged:

* an idle connection is closed after ``keep_alive_timeout``;
* when the server stops (``context.terminated``), an idle connection is
  closed at once and a busy one right after its response.
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

    def __init__(self, server: _Server, terminated: _Terminated, timeout_s: float) -> None:
        self._server = server
        self._terminated = terminated
        self._timeout_s = timeout_s
        self._scope: trio.CancelScope | None = None
        self._busy = False
        self._idle_again: trio.Event | None = None

    async def restart(self, task_group: Any, action: Any) -> None:
        """The connection is idle: close it ``timeout_s`` from now unless a request comes."""
        self._busy = False
        deadline = trio.current_time() + self._timeout_s
        if self._scope is None:
            self._scope = await task_group._nursery.start(self._watch, deadline)
        else:
            self._scope.deadline = deadline
        if self._idle_again is not None:
            self._idle_again.set()

    async def stop(self) -> None:
        """A request is in flight: no idle deadline until it is answered."""
        self._busy = True
        if self._scope is not None:
            self._scope.deadline = math.inf

    async def _watch(
        self, deadline: float, *, task_status: trio.TaskStatus[trio.CancelScope]
    ) -> None:
        with trio.CancelScope(deadline=deadline) as scope:
            task_status.started(scope)
            await self._terminated.wait()
            while self._busy:  # the server stops: finish the response in flight first
                self._idle_again = trio.Event()
                await self._idle_again.wait()
        with trio.CancelScope(shield=True):
            await self._server._initiate_server_close()
