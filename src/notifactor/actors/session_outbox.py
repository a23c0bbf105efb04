"""The outbox of a session: frames waiting for the socket, bounded, no task of its own.

A plain deque instead of a memory channel: an idle session holds ten
thousand of these, and a deque costs nothing until a frame is queued. The
session's writer is the only consumer; while the outbox is empty it parks in
:meth:`Outbox.wait_queued` and queueing a frame reschedules it directly
(cheaper than cancelling a scope on every live frame). Producers that may wait (replies, replay) use :meth:`put` and wait
for room; live frames use :meth:`put_nowait` and the session closes with 1013
when the outbox is full.

Live frames released from a hold (the opening hold, or the one of a resume)
are queued in order like the others but do not count against the limit:
they are already bounded (``replay_hold_limit``), and a client that reads
must not be closed because a hold ended. They do count for
:attr:`Outbox.backlogged`, so the delivery consumer paces what comes next.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

import attrs
import trio
from opentelemetry.trace import SpanContext


@attrs.frozen(kw_only=True)
class Outgoing:
    """A frame for the writer; ``id`` set for notification frames.

    ``trace`` (live frames, tracing on) parents the ``edge.socket_write`` span.
    ``released``: a live frame released from a hold (outside the outbox limit).
    ``then_close``: once this frame is written, the session closes with it.
    """

    text: str
    id: str | None = None
    created_at: datetime | None = None
    live: bool = False
    record: bool = True
    trace: SpanContext | None = None
    released: bool = False
    then_close: tuple[int, str] | None = None


class Outbox:
    """At most ``limit`` frames for one socket (see the module docstring)."""

    __slots__ = ("_drained", "_items", "_limit", "_released", "_room", "_writer")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._limit = limit
        self._items: deque[Outgoing] | None = None
        self._released = 0  # queued frames with ``released`` set
        self._drained = 0  # times the writer took the last queued frame
        self._room: trio.Event | None = None
        self._writer: trio.lowlevel.Task | None = None

    def __len__(self) -> int:
        return 0 if self._items is None else len(self._items)

    @property
    def drained(self) -> int:
        """How many times the outbox has been emptied by the writer (a burst's end)."""
        return self._drained

    @property
    def backlogged(self) -> bool:
        """Whether at least half the room is taken (the writer should run soon)."""
        return 2 * len(self) >= self._limit

    def put_nowait(self, outgoing: Outgoing) -> bool:
        """Queue ``outgoing``; ``False`` (nothing queued) when the outbox is full.

        A ``released`` frame is always queued: it does not count against the limit.
        """
        if outgoing.released:
            self._released += 1
        elif len(self) - self._released >= self._limit:
            return False
        if self._items is None:
            self._items = deque()
        self._items.append(outgoing)
        self.wake_writer()
        return True

    async def wait_queued(self) -> None:
        """Wait until a frame is queued or :meth:`wake_writer` (the single consumer; cancellable)."""
        if self._items:
            await trio.lowlevel.checkpoint()
            return
        if self._writer is not None:
            raise trio.BusyResourceError("another task is already waiting on this outbox")
        self._writer = trio.lowlevel.current_task()

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self._writer = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def put(self, outgoing: Outgoing) -> None:
        """Queue ``outgoing``, waiting while the outbox is full."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self.put_nowait(outgoing):
            await self.wait_taken()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_taken(self) -> None:
        """Wait until the writer takes a frame (cancellable)."""
        if self._room is None:
            self._room = trio.Event()
        await self._room.wait()

    def wake_writer(self) -> None:
        """Make the writer's :meth:`wait_queued` return, frame or not (a deadline, a stop)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            trio.lowlevel.reschedule(writer)

    def wake_waiters(self) -> None:
        """Wake the producers waiting for room, to look again (the session ended)."""
        if self._room is not None:
            room, self._room = self._room, None
            room.set()

    def take_nowait(self) -> Outgoing | None:
        """The oldest frame, or ``None``; wakes producers waiting for room."""
        if not self._items:
            self._items = None  # idle sessions keep no deque around
            return None
        outgoing = self._items.popleft()
        if not self._items:
            self._drained += 1
        if outgoing.released:
            self._released -= 1
        if self._room is not None:
            room, self._room = self._room, None
            room.set()
        return outgoing
