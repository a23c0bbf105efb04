"""Errors raised to code that talks to actors through their refs."""

from __future__ import annotations


class ActorError(Exception):
    """Base class of the errors raised by actor refs and replies."""


class MailboxFull(ActorError):
    """``tell_nowait`` found the mailbox at capacity.

    The caller decides what to do with the message (drop it, answer 503,
    close a slow client); use ``tell`` to wait for room instead.
    """

    def __init__(self, actor: str, capacity: int) -> None:
        super().__init__(f"mailbox of actor {actor!r} is full ({capacity} messages)")
        self.actor = actor
        self.capacity = capacity


class ActorStopped(ActorError):
    """The actor has terminated for good; its address accepts no more messages.

    Also what an ``ask`` raises when its request was still queued, or held
    unanswered, when the actor terminated.
    """

    def __init__(self, actor: str) -> None:
        super().__init__(f"actor {actor!r} is stopped")
        self.actor = actor


class ActorCrashed(ActorError):
    """The actor incarnation that held this request crashed before answering.

    The request is not redelivered (it may be the very message that crashed
    the actor); the asker decides whether to retry.
    """

    def __init__(self, actor: str, reason: str) -> None:
        super().__init__(f"actor {actor!r} crashed before replying: {reason}")
        self.actor = actor
        self.reason = reason


class ReplyAlreadySent(ActorError):
    """A reply was answered twice; the second answer would be lost silently."""
