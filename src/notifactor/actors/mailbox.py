"""Mailboxes: the bounded queue in front of an actor, owned by its address.

The mailbox belongs to the ``ActorRef``, not to one incarnation of the
actor: when the actor crashes and is restarted, messages still queued are
handled by the new incarnation, and senders never see the restart. Only the
messages an incarnation had already *taken* are affected by its crash (see
``Inbox`` and ``docs/supervision.md``).

The queue is a Trio memory channel with a fixed capacity, so a slow actor
slows its senders down (backpressure) instead of growing without bound.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

import attrs
import outcome
import trio

from notifactor.actors.errors import ActorStopped, MailboxFull
from notifactor.actors.messages import Reply, reply_of
from notifactor.actors.stop import StopSignal

M = TypeVar("M")

logger = logging.getLogger("notifactor.actors.mailbox")


@attrs.frozen(kw_only=True)
class MailboxStatistics:
    """A snapshot of a mailbox, for ``notifactor tree``, health and metrics.

    Attributes:
        capacity: maximum number of queued messages.
        depth: messages accepted but not yet taken by the actor.
        peak: highest depth seen since the mailbox was created.
        closed: whether the address was closed (the actor stopped for good).
    """

    capacity: int
    depth: int
    peak: int
    closed: bool


class Mailbox(Generic[M]):
    """A bounded queue plus the requests its current incarnation holds."""

    __slots__ = (
        "_capacity",
        "_closed",
        "_consumer",
        "_depth",
        "_held",
        "_peak",
        "_receive",
        "_send",
        "_waiting",
        "name",
    )

    def __init__(self, name: str, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"mailbox capacity must be an int >= 1 (got {capacity!r})")
        self.name = name
        self._capacity = capacity
        self._send, self._receive = trio.open_memory_channel[M](capacity)
        self._depth = 0
        self._peak = 0
        # Senders waiting for room, oldest first, with their messages (made when needed).
        self._waiting: OrderedDict[trio.lowlevel.Task, M] | None = None
        self._closed = False
        self._held: set[Reply[object]] = set()
        self._consumer: Inbox[M] | None = None

    @property
    def capacity(self) -> int:
        """Maximum number of queued messages."""
        return self._capacity

    @property
    def closed(self) -> bool:
        """Whether the mailbox accepts no more messages."""
        return self._closed

    async def put(self, message: M) -> None:
        """Queue ``message``, waiting for room (backpressure).

        Waiting senders get room in turn; a put cancelled while waiting
        queued nothing.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._try_put(message):
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        # Wait in line: a take hands the freed slot to the oldest waiting sender
        # (queueing its message for it), a close fails every waiting sender.
        if self._waiting is None:
            self._waiting = OrderedDict()
        waiting = self._waiting
        task = trio.lowlevel.current_task()
        waiting[task] = message

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            del waiting[task]
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def put_nowait(self, message: M) -> None:
        """Queue ``message`` or fail at once with ``MailboxFull``."""
        if not self._try_put(message):
            raise MailboxFull(self.name, self.capacity)

    def _try_put(self, message: M) -> bool:
        """Queue and count ``message`` in one step; ``False`` if the mailbox is full.

        Counting in the step that queues it, before the actor can take it,
        keeps the depth from reading below 0. A message handed straight to an
        actor waiting for one still counts until the actor takes it, so room
        is judged by the depth, not the channel: at most ``capacity``
        messages are ever accepted and not yet taken.
        """
        if self._closed:
            raise ActorStopped(self.name)
        if self._depth >= self._capacity or self._waiting:  # full, or others are in line
            return False
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:  # pragma: no cover - the channel holds <= depth messages
            return False
        except trio.ClosedResourceError:
            raise ActorStopped(self.name) from None
        self._accepted()
        return True

    def _accepted(self) -> None:
        self._depth += 1
        self._peak = max(self._peak, self._depth)

    def statistics(self) -> MailboxStatistics:
        """A snapshot of the depth, peak and capacity."""
        return MailboxStatistics(
            capacity=self.capacity, depth=self._depth, peak=self._peak, closed=self._closed
        )

    def open_inbox(self, stop: StopSignal | None = None) -> Inbox[M]:
        """The receiving side for one incarnation of the actor.

        Raises:
            RuntimeError: another incarnation is still consuming this mailbox.
            ActorStopped: the mailbox is closed.
        """
        if self._closed:
            raise ActorStopped(self.name)
        if self._consumer is not None:
            raise RuntimeError(f"actor {self.name!r} already has a running incarnation")
        inbox = Inbox(self, stop if stop is not None else StopSignal())
        self._consumer = inbox
        return inbox

    def close(self) -> None:
        """Close for good: fail waiting senders and queued or held requests.

        Messages still queued are dropped; requests among them, and requests
        an incarnation took but never answered, fail with ``ActorStopped``.
        """
        if self._closed:
            return
        self._closed = True
        self._send.close()
        dropped = 0
        while True:
            try:
                message = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            self._depth -= 1
            dropped += 1
            reply = reply_of(message)
            if reply is not None:
                reply.fail(ActorStopped(self.name))
        self._receive.close()
        waiting, self._waiting = self._waiting, None
        for task in waiting or ():
            trio.lowlevel.reschedule(task, outcome.Error(ActorStopped(self.name)))
        self._fail_held(lambda: ActorStopped(self.name))
        if dropped:
            logger.warning(
                "actor %s stopped with %d undelivered messages",
                self.name,
                dropped,
                extra={"actor": self.name, "dropped": dropped},
            )

    def _taken(self, message: M) -> None:
        self._depth -= 1
        waiting = self._waiting
        if waiting:  # the freed slot goes to the oldest waiting sender
            task, queued = waiting.popitem(last=False)
            self._send.send_nowait(queued)  # room: the channel holds at most depth messages
            self._accepted()
            trio.lowlevel.reschedule(task)
        reply = reply_of(message)
        if reply is not None:
            reply._hold_in(self._held)

    def _fail_held(self, error: Callable[[], Exception]) -> None:
        held, self._held = self._held, set()
        for reply in held:
            reply._holder = None
            if not reply.resolved:
                reply.fail(error())

    def _release(self, inbox: Inbox[M], error: Callable[[], Exception] | None) -> None:
        if self._consumer is inbox:
            self._consumer = None
        if error is not None:
            self._fail_held(error)


class Inbox(Generic[M]):
    """One incarnation's view of the mailbox: receive until stopped.

    ``receive`` (and ``async for``) end with ``trio.EndOfChannel`` when the
    supervisor requests a graceful stop or the address is closed; messages
    left in the queue stay there for the next incarnation.
    """

    __slots__ = ("_closed", "_mailbox", "_stop")

    def __init__(self, mailbox: Mailbox[M], stop: StopSignal) -> None:
        self._mailbox = mailbox
        self._stop = stop
        self._closed = False

    @property
    def name(self) -> str:
        """The actor's name."""
        return self._mailbox.name

    @property
    def stop_requested(self) -> bool:
        """Whether a graceful stop was requested; finish up and return."""
        return self._stop.requested

    async def receive(self) -> M:
        """Take the next message, waiting for one.

        Raises:
            trio.EndOfChannel: a graceful stop was requested or the mailbox
                was closed; the incarnation should finish and return.
        """
        mailbox = self._mailbox
        await trio.lowlevel.checkpoint()
        if self._stop.requested or self._closed:
            raise trio.EndOfChannel
        try:
            message = mailbox._receive.receive_nowait()
        except trio.WouldBlock:
            message = await self._receive_blocking()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.EndOfChannel from None
        mailbox._taken(message)
        return message

    def drain_nowait(self, limit: int) -> list[M]:
        """Take up to ``limit`` queued messages without waiting (possibly none).

        For actors that batch: they wake once, then take what piled up.
        """
        mailbox = self._mailbox
        taken: list[M] = []
        while len(taken) < limit and not self._closed:
            try:
                message = mailbox._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            mailbox._taken(message)
            taken.append(message)
        return taken

    async def wait_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (Trio clock), or until a graceful stop is requested."""
        scope = trio.CancelScope(deadline=deadline)
        self._stop.register(scope)
        try:
            with scope:
                await trio.sleep_forever()
        finally:
            self._stop.unregister(scope)

    async def _receive_blocking(self) -> M:
        scope = trio.CancelScope()
        self._stop.register(scope)
        try:
            with scope:
                return await self._mailbox._receive.receive()
        except trio.ClosedResourceError:
            raise trio.EndOfChannel from None
        finally:
            self._stop.unregister(scope)
        # Only reached when the stop request cancelled the wait.
        raise trio.EndOfChannel

    def __aiter__(self) -> AsyncIterator[M]:
        return self

    async def __anext__(self) -> M:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self, error: Callable[[], Exception] | None) -> None:
        """End this incarnation's hold on the mailbox (runtime use).

        Args:
            error: if given, every request this incarnation took and did not
                answer fails with a fresh error from this factory.
        """
        if not self._closed:
            self._closed = True
            self._mailbox._release(self, error)
