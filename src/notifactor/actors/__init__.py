"""Actors: Trio tasks that own their state and talk through typed messages.

Public API::

    ref = ActorRef[CounterMsg]("counter", mailbox_size=64)
    await ref.tell(Increment(by=1))          # waits while the mailbox is full
    ref.tell_nowait(Increment(by=1))         # raises MailboxFull instead
    n = await ref.ask(lambda reply: Get(reply=reply))

    class Counter(Actor[CounterMsg]):
        async def handle(self, message: CounterMsg) -> None: ...

Run it under a supervisor with ``notifactor.supervisors.actor_spec(ref,
Counter)``, or directly with ``nursery.start(run_actor, ref, Counter)``.
"""

from notifactor.actors.actor import Actor, run_actor
from notifactor.actors.crash import CrashReason, summarize_exception
from notifactor.actors.errors import (
    ActorCrashed,
    ActorError,
    ActorStopped,
    MailboxFull,
    ReplyAlreadySent,
)
from notifactor.actors.mailbox import Inbox, MailboxStatistics
from notifactor.actors.messages import Reply
from notifactor.actors.ref import ActorRef
from notifactor.actors.stop import StopSignal, current_stop_signal

__all__ = [
    "Actor",
    "ActorCrashed",
    "ActorError",
    "ActorRef",
    "ActorStopped",
    "CrashReason",
    "Inbox",
    "MailboxFull",
    "MailboxStatistics",
    "Reply",
    "ReplyAlreadySent",
    "StopSignal",
    "current_stop_signal",
    "run_actor",
    "summarize_exception",
]
