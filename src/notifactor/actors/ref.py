"""Actor addresses: the only way to talk to an actor.

An ``ActorRef`` is created once, before the actor runs, and handed to
whoever needs to send to it. It stays valid across restarts of the actor
because it owns the mailbox: a restarted incarnation simply starts reading
where the crashed one stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from notifactor.actors.mailbox import Inbox, Mailbox, MailboxStatistics
from notifactor.actors.messages import Reply
from notifactor.actors.stop import StopSignal

M = TypeVar("M")
R = TypeVar("R")


class ActorRef(Generic[M]):
    """The address of an actor whose inbox accepts messages of type ``M``.

    ``M`` is normally a union of frozen attrs classes, one per message kind.

    Args:
        name: unique, human-readable name; also the child id in its supervisor.
        mailbox_size: mailbox capacity (a named config value, ``mailbox_size``).
    """

    __slots__ = ("_mailbox", "name")

    def __init__(self, name: str, *, mailbox_size: int) -> None:
        self.name = name
        self._mailbox: Mailbox[M] = Mailbox(name, mailbox_size)

    def __repr__(self) -> str:
        return f"<ActorRef {self.name!r}>"

    async def tell(self, message: M) -> None:
        """Send ``message``; wait while the mailbox is full (backpressure).

        Raises:
            ActorStopped: the actor has terminated for good.
        """
        await self._mailbox.put(message)

    def tell_nowait(self, message: M) -> None:
        """Send ``message`` without waiting.

        Raises:
            MailboxFull: the mailbox is at capacity; nothing was sent.
            ActorStopped: the actor has terminated for good.
        """
        self._mailbox.put_nowait(message)

    async def ask(self, make_request: Callable[[Reply[R]], M]) -> R:
        """Send a request and wait for its answer.

        The caller owns the deadline (wrap the call in ``trio.move_on_after``
        or ``trio.fail_after``); a cancelled ask simply abandons its reply.

        Args:
            make_request: builds the request message around a fresh reply,
                e.g. ``lambda reply: GetCount(reply=reply)``.

        Returns:
            What the actor passed to ``reply.send``.

        Raises:
            ActorCrashed: the incarnation that took the request crashed first.
            ActorStopped: the actor terminated for good before answering.
            Exception: whatever the actor passed to ``reply.fail``.
        """
        reply: Reply[R] = Reply()
        await self._mailbox.put(make_request(reply))
        return await reply.wait()

    @property
    def closed(self) -> bool:
        """Whether the actor terminated for good and the address is dead."""
        return self._mailbox.closed

    def close(self) -> None:
        """Retire the address: queued and held requests fail, tells raise.

        Supervisors call this when the actor terminates for good (a temporary
        actor exits, a dynamic child is stopped); idempotent.
        """
        self._mailbox.close()

    def statistics(self) -> MailboxStatistics:
        """Mailbox depth, peak, capacity and whether the address is closed."""
        return self._mailbox.statistics()

    def open_inbox(self, stop: StopSignal | None = None) -> Inbox[M]:
        """The receiving side for a new incarnation (runtime use, see ``run_actor``)."""
        return self._mailbox.open_inbox(stop)
