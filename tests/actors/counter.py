"""A small actor used by the actor tests: a counter with a poison message."""

from __future__ import annotations

from typing import assert_never

import attrs
import trio

from notifactor.actors import Actor, Reply


@attrs.frozen(kw_only=True)
class Increment:
    by: int = 1


@attrs.frozen(kw_only=True)
class Get:
    reply: Reply[int]


@attrs.frozen(kw_only=True)
class Divide:
    """Answers ``100 // by``; ``by=0`` is refused with an error reply, not a crash."""

    by: int
    reply: Reply[int]


@attrs.frozen(kw_only=True)
class Explode:
    """Crashes the actor while it handles this message."""

    reply: Reply[None] | None = None


@attrs.frozen(kw_only=True)
class GetLater:
    """Held without an answer until ``Flush`` (like a batching writer)."""

    reply: Reply[int]


@attrs.frozen(kw_only=True)
class Flush:
    pass


@attrs.frozen(kw_only=True)
class Block:
    """Blocks the actor until the event is set (to fill the mailbox)."""

    release: trio.Event


CounterMsg = Increment | Get | Divide | Explode | GetLater | Flush | Block


class Counter(Actor[CounterMsg]):
    incarnations = 0
    stopped_gracefully = 0

    def __init__(self) -> None:
        type(self).incarnations += 1
        self.value = 0
        self.held: list[Reply[int]] = []

    async def handle(self, message: CounterMsg) -> None:
        match message:
            case Increment(by=by):
                self.value += by
            case Get(reply=reply):
                reply.send(self.value)
            case Divide(by=by, reply=reply):
                if by == 0:
                    reply.fail(ZeroDivisionError("cannot divide by zero"))
                else:
                    reply.send(100 // by)
            case Explode():
                raise RuntimeError("exploded")
            case GetLater(reply=reply):
                self.held.append(reply)
            case Flush():
                for reply in self.held:
                    reply.send(self.value)
                self.held.clear()
            case Block(release=release):
                await release.wait()
            case _:
                assert_never(message)

    async def on_stop(self) -> None:
        type(self).stopped_gracefully += 1
