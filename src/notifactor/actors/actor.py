"""Actors: a Trio task that owns its state and handles one message at a time.

Subclass ``Actor`` and implement ``handle``; override ``run`` when the actor
needs more than "one message, then the next" (timers, batching with a flush
deadline). ``run_actor`` runs one incarnation against an ``ActorRef``; a
supervisor calls it again, with a fresh ``Actor`` from the factory, after a
crash. State lives on the instance, so a restart starts from clean state.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

from notifactor.actors.crash import summarize_exception
from notifactor.actors.errors import ActorCrashed, ActorStopped
from notifactor.actors.mailbox import Inbox
from notifactor.actors.ref import ActorRef
from notifactor.actors.stop import optional_stop_signal

M = TypeVar("M")


class Actor(abc.ABC, Generic[M]):
    """Behaviour of an actor whose inbox accepts messages of type ``M``.

    Lifecycle of one incarnation: ``on_start`` (acquire what the actor needs;
    the supervisor waits for it before starting the next sibling), then
    ``run`` until the inbox ends, then ``on_stop`` (graceful stops only: not
    after a crash or a kill). Raise from any of them to crash; answer invalid
    requests with ``reply.fail`` or an error value instead of crashing.
    """

    async def on_start(self) -> None:  # optional hook
        """Prepare the incarnation before it is reported ready."""

    @abc.abstractmethod
    async def handle(self, message: M) -> None:
        """Handle one message; typically ``match message: ... case _: assert_never``."""

    async def run(self, inbox: Inbox[M]) -> None:
        """Handle messages until a graceful stop is requested.

        Override for custom loops, e.g. ``with trio.move_on_at(flush_at):
        message = await inbox.receive()``; return when ``receive`` raises
        ``trio.EndOfChannel``.
        """
        async for message in inbox:
            await self.handle(message)

    async def on_stop(self) -> None:  # optional hook
        """Finish up after a graceful stop (flush, close), within the budget."""


async def run_actor(
    ref: ActorRef[M],
    factory: Callable[[], Actor[M]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one incarnation of an actor on ``ref``'s mailbox.

    This is a start function: a supervisor runs it as a child (see
    ``notifactor.supervisors.actor_spec``); tests may ``nursery.start`` it
    directly. When it ends, the requests the incarnation took and did not
    answer fail: with ``ActorCrashed`` after a crash or a kill,
    ``ActorStopped`` after a graceful stop. Queued messages stay queued.
    """
    inbox = ref.open_inbox(optional_stop_signal())
    reason = "killed (cancelled while running)"
    try:
        actor = factory()
        await actor.on_start()
        task_status.started()
        await actor.run(inbox)
        await actor.on_stop()
    except Exception as exc:  # observed, not handled: re-raised unchanged
        reason = summarize_exception(exc)
        raise
    else:
        inbox.close(lambda: ActorStopped(ref.name))
    finally:
        # Runs after the ``else`` too, where the inbox is already closed.
        inbox.close(lambda: ActorCrashed(ref.name, reason))
