"""Delivery-state writes of the edge (``delivered``, ``acked``), batched.

Sessions hand updates to one :class:`DeliveryRecorder` per process through a
bounded channel and go on; the recorder submits them to the storage writer in
batches (never one round trip per frame) and a second task waits for each
batch to be durable and logs failures. Losing such an update is not losing a
notification: it stays ``pending`` and the next ``resume`` sends it again.
When the channel is full, sessions wait (backpressure towards storage).
On a graceful stop the recorder submits what is queued and returns once
every submission is durable or failed (logged), within ``STOP_BUDGET_S``.
"""

from __future__ import annotations

import logging

import trio

from notifactor.actors.storage_writer import StorageWriterClient, WriteTicket
from notifactor.domain.notification import DeliveryUpdate
from notifactor.edge.stopping import until_stop_requested

log = logging.getLogger("notifactor.edge.recorder")

_TICKETS_IN_FLIGHT = 64

STOP_BUDGET_S = 5.0
"""How long a stopping recorder hands over what it holds and waits for it to be durable."""


class DeliveryRecorder:
    """Batches :class:`DeliveryUpdate` records into a storage writer.

    Args:
        writer: the storage writer's client.
        queue_size: updates buffered before :meth:`record` waits.
        batch: most updates per submission.
    """

    def __init__(self, writer: StorageWriterClient, *, queue_size: int, batch: int) -> None:
        self._writer = writer
        self._batch = batch
        self._send, self._receive = trio.open_memory_channel[DeliveryUpdate](queue_size)
        # A batch taken off the queue and not yet handed to the writer: a stop
        # that lands while it is being submitted must not lose it.
        self._holding: list[DeliveryUpdate] = []
        self._unwatched: WriteTicket | None = None

    async def record(self, update: DeliveryUpdate) -> None:
        """Queue ``update``; waits only while the queue is full."""
        await self._send.send(update)

    def queued(self) -> int:
        """Updates waiting for submission."""
        return self._receive.statistics().current_buffer_used

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Submit queued updates until stopped; then submit what is queued.

        On a graceful stop it returns once its submissions are durable (or
        failed, logged), at most :data:`STOP_BUDGET_S` later; when cancelled it
        only hands what is queued over to the writer.
        """
        tickets_send, tickets_receive = trio.open_memory_channel[WriteTicket](_TICKETS_IN_FLIGHT)
        watched = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, tickets_receive, watched)
            task_status.started()
            graceful = False
            try:
                with until_stop_requested():
                    await self._submit_loop(tickets_send)
                graceful = True
            finally:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + STOP_BUDGET_S
                    last = await self._drain()
                    if graceful:
                        tickets_send.close()  # the watcher ends with the tickets it has
                        await self._wait_durable(last)
                        await watched.wait()
                if scope.cancelled_caught:
                    log.warning(
                        "stopped with delivery-state updates not known to be stored "
                        "after %.1f s (they stay pending; resume resends them)",
                        STOP_BUDGET_S,
                    )
                nursery.cancel_scope.cancel()

    async def _submit_loop(self, tickets: trio.MemorySendChannel[WriteTicket]) -> None:
        while True:
            first = await self._receive.receive()
            self._holding = [first, *self._take_nowait(self._batch - 1)]
            # A cancelled submit has handed nothing over (a memory-channel
            # send either happens or not), so the batch is held until it returns.
            ticket = await self._writer.submit(self._holding)
            self._holding = []
            # Likewise a cancelled send has not handed the ticket to the watcher.
            self._unwatched = ticket
            await tickets.send(ticket)
            self._unwatched = None

    def _take_nowait(self, most: int) -> list[DeliveryUpdate]:
        taken: list[DeliveryUpdate] = []
        while len(taken) < most:
            try:
                taken.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break
        return taken

    async def _drain(self) -> list[WriteTicket]:
        """Submit the batch in hand and everything queued; the tickets not yet watched."""
        tickets = [] if self._unwatched is None else [self._unwatched]
        self._unwatched = None
        held, self._holding = self._holding, []
        while batch := held or self._take_nowait(self._batch):
            held = []
            try:
                tickets.append(await self._writer.submit(batch))
            except Exception as error:  # the writer may be gone already
                log.warning("could not hand %d delivery updates over: %s", len(batch), error)
                break
        return tickets

    @classmethod
    async def _wait_durable(cls, tickets: list[WriteTicket]) -> None:
        for ticket in tickets:
            await cls._settle(ticket)

    @classmethod
    async def _watch(
        cls, tickets: trio.MemoryReceiveChannel[WriteTicket], watched: trio.Event
    ) -> None:
        try:
            async for ticket in tickets:
                await cls._settle(ticket)
        finally:
            watched.set()

    @staticmethod
    async def _settle(ticket: WriteTicket) -> None:
        try:
            await ticket.wait_durable()
        except Exception as error:  # logged; the states stay pending, resume resends
            log.warning("delivery-state update not stored: %s", error)
