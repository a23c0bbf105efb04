"""The retry scheduler: moves due retries back into their partition streams.

Failed attempts are scheduled by the partition consumers into one sorted set
per partition (``retry:{p}``, scored by due time) atomically with the ack of
the failed entry, so a scheduled retry survives any dispatcher restart. Every
``retry_poll_s`` the scheduler runs, per partition, one Lua script that takes
the due members and re-adds them to ``stream:{p}`` in the same atomic step:
however many dispatchers run a scheduler, each retry is moved exactly once,
and from then on it is an ordinary stream entry (consumer group, pending-entry
recovery) carrying its attempt count.
"""

from __future__ import annotations

import logging

import trio

from notifactor.actors.outage import Outage
from notifactor.actors.stop import optional_stop_signal
from notifactor.adapters.redis_client import UNAVAILABLE
from notifactor.ports.dispatch import DispatchBus

logger = logging.getLogger(__name__)


class RetryScheduler:
    """Start function for a supervisor: promote due retries until stopped.

    Args:
        bus: the stream bus.
        partitions: how many partitions there are.
        poll_s: seconds between passes.
        batch: retries moved per partition per script call.
    """

    def __init__(self, bus: DispatchBus, *, partitions: int, poll_s: float, batch: int) -> None:
        self._bus = bus
        self._partitions = partitions
        self._poll_s = poll_s
        self._batch = batch
        self.moved = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll until a graceful stop is requested (between passes, never inside one)."""
        stop = optional_stop_signal()
        task_status.started()
        outage = Outage("retry schedule", logger)
        while stop is None or not stop.requested:
            try:
                await self.promote_due()
            except UNAVAILABLE as error:  # due retries wait in Redis: nothing is lost
                await outage.failed(error)
                continue
            outage.succeeded()
            with trio.CancelScope() as wait_scope:
                if stop is not None:
                    stop.register(wait_scope)
                try:
                    await trio.sleep(self._poll_s)
                finally:
                    if stop is not None:
                        stop.unregister(wait_scope)

    async def promote_due(self) -> int:
        """One pass over every partition; how many retries moved."""
        moved = 0
        for partition in range(self._partitions):
            while True:
                count = await self._bus.promote_due_retries(partition, now_ms=-1, limit=self._batch)
                moved += count
                if count < self._batch:
                    break
        if moved:
            logger.debug("moved %d due retries back into their streams", moved)
        self.moved += moved
        return moved
