"""Replies: how an actor answers a request sent with ``ActorRef.ask``.

A request is an ordinary message of the actor's inbox union that carries a
``reply: Reply[T]`` field::

    @attrs.frozen(kw_only=True)
    class GetCount:
        reply: Reply[int]

    count = await counter.ask(lambda reply: GetCount(reply=reply))

The actor answers with ``message.reply.send(value)`` (or ``.fail(error)``),
now or later: a batching actor may hold replies until its batch is written.
The runtime finds replies by that field name, so that it can fail every
reply an incarnation held when that incarnation crashes instead of leaving
the askers waiting forever.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

from notifactor.actors.errors import ReplyAlreadySent

T = TypeVar("T")


class Reply(Generic[T]):
    """A one-shot answer slot, filled once by the actor, awaited by the asker.

    It is a value plus an event rather than a channel: exactly one answer is
    ever sent, and sending never blocks the actor.
    """

    __slots__ = ("_error", "_event", "_holder", "_resolved", "_value")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._resolved = False
        self._value: T | None = None
        self._error: Exception | None = None
        self._holder: set[Reply[object]] | None = None

    @property
    def resolved(self) -> bool:
        """Whether an answer (value or error) was already given."""
        return self._resolved

    def send(self, value: T) -> None:
        """Answer the request. Never blocks; a gone asker is not an error.

        Raises:
            ReplyAlreadySent: the request was already answered.
        """
        self._resolve()
        self._value = value
        self._event.set()

    def fail(self, error: Exception) -> None:
        """Answer the request with an error that ``ask`` raises in the asker.

        Raises:
            ReplyAlreadySent: the request was already answered.
        """
        self._resolve()
        self._error = error
        self._event.set()

    async def wait(self) -> T:
        """Wait for the answer; the caller owns the deadline."""
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set before the event

    def _resolve(self) -> None:
        if self._resolved:
            raise ReplyAlreadySent("this request was already answered")
        self._resolved = True
        if self._holder is not None:
            self._holder.discard(self)
            self._holder = None

    def _hold_in(self, holder: set[Reply[object]]) -> None:
        """Called by the runtime when an incarnation takes the request."""
        self._holder = holder
        holder.add(self)  # type: ignore[arg-type]


def reply_of(message: object) -> Reply[object] | None:
    """The unanswered reply a message carries, if it is a request."""
    reply = getattr(message, "reply", None)
    if isinstance(reply, Reply) and not reply.resolved:
        return reply
    return None
