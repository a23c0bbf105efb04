"""A one-way flag that tasks can wait for, costing a ``trio.Event`` only once one waits.

Every supervised child carries a stop signal and a "done" flag, and a gateway
runs one child per WebSocket: tens of thousands of flags that are almost
never waited for. A ``trio.Event`` holds a set of waiting tasks from the
start (about 270 bytes); a :class:`Latch` makes one only for its first waiter.
"""

from __future__ import annotations

import trio


class Latch:
    """Set once, never cleared; ``wait`` returns once it is set (like ``trio.Event``)."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: trio.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        """Set the latch and wake every waiter; idempotent."""
        if self._set:
            return
        self._set = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Return once set (a checkpoint either way, as ``trio.Event.wait``)."""
        if self._set:
            await trio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = trio.Event()
        await self._event.wait()
