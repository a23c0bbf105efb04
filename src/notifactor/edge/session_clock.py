"""One timer for the idle writers of every session of an edge.

An idle session's writer wakes for its heartbeat, and once for the end of
its opening hold. Waiting with a deadline takes a Trio cancel scope for as
long as the writer waits, about 750 bytes per idle session, and a gateway
holds tens of thousands of them. Instead, each writer asks the edge's
:class:`SessionClock` to wake it at its next deadline and waits with no
deadline of its own; one task per edge sleeps until the earliest alarm.

An alarm is a plain callback (the session's outbox waking its writer). A
writer that wakes early for a frame leaves its alarm set: when it rings, the
writer finds nothing due and waits again, so no alarm is ever cancelled.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable

import trio

from notifactor.actors.stop import optional_stop_signal
from notifactor.edge.stopping import until_stop_requested


class SessionClock:
    """Alarms by due time; :meth:`run` rings them (see the module docstring)."""

    __slots__ = ("_alarms", "_order", "_sleep")

    def __init__(self) -> None:
        self._alarms: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()  # equal times ring in the order set
        self._sleep: trio.CancelScope | None = None

    def __len__(self) -> int:
        """Alarms not rung yet."""
        return len(self._alarms)

    def wake_at(self, when: float, wake: Callable[[], None]) -> None:
        """Call ``wake()`` once Trio's clock reaches ``when``.

        ``wake`` must not wait or raise: it runs in the clock's task.
        """
        heapq.heappush(self._alarms, (when, next(self._order), wake))
        if self._sleep is not None and when < self._sleep.deadline:
            self._sleep.deadline = when

    def ring(self, now: float) -> int:
        """Ring every alarm due at ``now``, earliest first; how many rang."""
        rung = 0
        alarms = self._alarms
        while alarms and alarms[0][0] <= now:
            _, _, wake = heapq.heappop(alarms)
            wake()
            rung += 1
        return rung

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Ring alarms as they fall due, until cancelled or asked to stop (supervised).

        The edge stops it last, once its sessions are closed.
        """
        stop = optional_stop_signal()
        task_status.started()
        while stop is None or not stop.requested:
            with until_stop_requested() as sleep:
                sleep.deadline = self._alarms[0][0] if self._alarms else math.inf
                self._sleep = sleep
                try:
                    await trio.sleep_forever()
                finally:
                    self._sleep = None
            self.ring(trio.current_time())
