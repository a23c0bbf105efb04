"""tell / tell_nowait / ask semantics and mailbox statistics."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from notifactor.actors import ActorRef, ActorStopped, MailboxFull, ReplyAlreadySent, run_actor

from .counter import Block, Counter, CounterMsg, Divide, Get, Increment


async def test_tell_then_ask(autojump_clock: trio.testing.MockClock) -> None:
    ref = ActorRef[CounterMsg]("counter", mailbox_size=8)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_actor, ref, Counter)
        await ref.tell(Increment(by=2))
        ref.tell_nowait(Increment(by=3))
        assert await ref.ask(lambda reply: Get(reply=reply)) == 5
        nursery.cancel_scope.cancel()


async def test_ask_raises_what_the_actor_fails_the_reply_with(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref = ActorRef[CounterMsg]("counter", mailbox_size=8)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_actor, ref, Counter)
        assert await ref.ask(lambda reply: Divide(by=4, reply=reply)) == 25
        with pytest.raises(ZeroDivisionError):
            await ref.ask(lambda reply: Divide(by=0, reply=reply))
        # A refused request is an answer, not a crash: the state survives.
        await ref.tell(Increment())
        assert await ref.ask(lambda reply: Get(reply=reply)) == 1
        nursery.cancel_scope.cancel()


async def test_tell_nowait_raises_when_full_and_tell_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref = ActorRef[CounterMsg]("counter", mailbox_size=2)
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_actor, ref, Counter)
        await ref.tell(Block(release=release))
        await trio.testing.wait_all_tasks_blocked()  # the actor is now blocked
        ref.tell_nowait(Increment())
        ref.tell_nowait(Increment())
        with pytest.raises(MailboxFull, match="'counter' is full \\(2 messages\\)"):
            ref.tell_nowait(Increment())

        sent = trio.Event()

        async def sender() -> None:
            await ref.tell(Increment())
            sent.set()

        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()  # backpressure: waits for room
        assert ref.statistics().depth == 2
        release.set()
        await sent.wait()
        assert await ref.ask(lambda reply: Get(reply=reply)) == 3
        stats = ref.statistics()
        assert (stats.capacity, stats.depth, stats.peak, stats.closed) == (2, 0, 2, False)
        nursery.cancel_scope.cancel()


async def test_a_cancelled_ask_abandons_its_reply(autojump_clock: trio.testing.MockClock) -> None:
    ref = ActorRef[CounterMsg]("counter", mailbox_size=4)
    release = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_actor, ref, Counter)
        await ref.tell(Block(release=release))
        with trio.move_on_after(1.0) as scope:
            await ref.ask(lambda reply: Get(reply=reply))
        assert scope.cancelled_caught  # the caller owns the deadline
        release.set()
        assert await ref.ask(lambda reply: Get(reply=reply)) == 0  # the actor is fine
        nursery.cancel_scope.cancel()


async def test_closed_ref_refuses_messages_and_fails_queued_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref = ActorRef[CounterMsg]("counter", mailbox_size=4)
    outcome: list[BaseException] = []

    async def ask_unserved() -> None:
        try:
            await ref.ask(lambda reply: Get(reply=reply))
        except ActorStopped as error:
            outcome.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask_unserved)  # no incarnation runs: it stays queued
        await trio.testing.wait_all_tasks_blocked()
        assert ref.statistics().depth == 1
        ref.close()
    assert len(outcome) == 1
    assert ref.closed
    with pytest.raises(ActorStopped):
        await ref.tell(Increment())
    with pytest.raises(ActorStopped):
        ref.tell_nowait(Increment())
    assert ref.statistics().depth == 0


def test_a_reply_is_answered_once() -> None:
    from notifactor.actors import Reply

    reply: Reply[int] = Reply()
    reply.send(1)
    with pytest.raises(ReplyAlreadySent):
        reply.send(2)


def test_mailbox_must_be_bounded() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ActorRef[CounterMsg]("x", mailbox_size=0)
    with pytest.raises(ValueError, match="capacity"):
        ActorRef[CounterMsg]("x", mailbox_size=float("inf"))  # type: ignore[arg-type]
