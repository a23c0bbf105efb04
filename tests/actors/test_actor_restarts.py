"""Addresses survive restarts; the in-flight rule; graceful stops."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from notifactor.actors import ActorCrashed, ActorRef, ActorStopped
from notifactor.domain.backoff import BackoffPolicy
from notifactor.supervisors import Supervisor, actor_spec

from .counter import Counter, CounterMsg, Explode, Flush, Get, GetLater, Increment

NO_BACKOFF = BackoffPolicy(min_s=0.0, max_s=0.0, jitter=0.0)


async def test_the_address_survives_a_restart_and_queued_messages_are_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref = ActorRef[CounterMsg]("counter", mailbox_size=16)
    sup = Supervisor("sup", [actor_spec(ref, Counter)], backoff=NO_BACKOFF)
    Counter.incarnations = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await ref.tell(Increment(by=5))
        # Queue the crash and three increments behind it in one go.
        ref.tell_nowait(Explode())
        for _ in range(3):
            ref.tell_nowait(Increment())
        # The new incarnation starts from clean state and gets the queued increments.
        assert await ref.ask(lambda reply: Get(reply=reply)) == 3
        assert Counter.incarnations == 2
        assert sup.statistics().children[0].restarts == 1
        sup.request_stop()


async def test_the_request_being_handled_in_a_crash_fails_with_actor_crashed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref = ActorRef[CounterMsg]("counter", mailbox_size=16)
    sup = Supervisor("sup", [actor_spec(ref, Counter)], backoff=NO_BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with pytest.raises(ActorCrashed, match="RuntimeError: exploded"):
            await ref.ask(lambda reply: Explode(reply=reply))
        assert await ref.ask(lambda reply: Get(reply=reply)) == 0
        sup.request_stop()


async def test_requests_held_unanswered_fail_when_the_holder_crashes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref = ActorRef[CounterMsg]("counter", mailbox_size=16)
    sup = Supervisor("sup", [actor_spec(ref, Counter)], backoff=NO_BACKOFF)
    errors: list[ActorCrashed] = []

    async def ask_later() -> None:
        try:
            await ref.ask(lambda reply: GetLater(reply=reply))
        except ActorCrashed as error:
            errors.append(error)

    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        nursery.start_soon(ask_later)
        nursery.start_soon(ask_later)
        await trio.testing.wait_all_tasks_blocked()
        await ref.tell(Explode())
        await trio.testing.wait_all_tasks_blocked()
        assert len(errors) == 2  # nobody waits forever for an answer that cannot come
        # ... while held requests are answered normally otherwise.
        async with trio.open_nursery() as inner:

            async def ask_and_check() -> None:
                assert await ref.ask(lambda reply: GetLater(reply=reply)) == 0

            inner.start_soon(ask_and_check)
            await trio.testing.wait_all_tasks_blocked()
            await ref.tell(Flush())
        sup.request_stop()


async def test_graceful_stop_runs_on_stop_and_keeps_queued_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref = ActorRef[CounterMsg]("counter", mailbox_size=16)
    sup = Supervisor("sup", [actor_spec(ref, Counter)], backoff=NO_BACKOFF)
    Counter.stopped_gracefully = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        sup.request_stop()
    assert Counter.stopped_gracefully == 1
    assert not ref.closed  # a restarted tree reuses the address
    await ref.tell(Increment())
    assert ref.statistics().depth == 1
    async with trio.open_nursery() as nursery:  # the same tree, run again
        await nursery.start(sup.run)
        assert await ref.ask(lambda reply: Get(reply=reply)) == 1
        sup.request_stop()


async def test_a_temporary_actor_that_crashes_closes_its_address(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref = ActorRef[CounterMsg]("session", mailbox_size=16)
    sup = Supervisor("sup", [actor_spec(ref, Counter, restart="temporary")], backoff=NO_BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        with pytest.raises(ActorCrashed):
            await ref.ask(lambda reply: Explode(reply=reply))
        await trio.testing.wait_all_tasks_blocked()
        assert ref.closed
        with pytest.raises(ActorStopped):
            await ref.tell(Increment())
        sup.request_stop()


async def test_mailbox_statistics_appear_in_the_tree(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ref = ActorRef[CounterMsg]("counter", mailbox_size=16)
    sup = Supervisor("sup", [actor_spec(ref, Counter)], backoff=NO_BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for _ in range(4):
            ref.tell_nowait(Increment())
        node = sup.statistics().children[0]
        assert node.kind == "actor"
        assert node.mailbox is not None
        assert (node.mailbox.depth, node.mailbox.peak) == (4, 4)
        await ref.ask(lambda reply: Get(reply=reply))
        node = sup.statistics().children[0]
        assert node.mailbox is not None
        assert node.mailbox.depth == 0
        assert node.mailbox.peak >= 4
        sup.request_stop()
