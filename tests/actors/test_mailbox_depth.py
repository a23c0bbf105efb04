"""Mailbox depth and peak: messages accepted and not yet taken, never below 0
nor above the capacity, whatever the order in which senders and the actor run."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from notifactor.actors import ActorRef
from notifactor.actors.actor import Actor, run_actor
from notifactor.actors.mailbox import Mailbox


class DepthRecorder(Actor[int]):
    """Records the depth of its own mailbox each time it handles a message."""

    def __init__(self, ref: ActorRef[int], seen: list[int]) -> None:
        self._ref = ref
        self._seen = seen

    async def handle(self, message: int) -> None:
        self._seen.append(self._ref.statistics().depth)


async def test_a_fast_actor_never_sees_a_negative_depth() -> None:
    seen: list[int] = []
    ref = ActorRef[int]("x", mailbox_size=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_actor, ref, lambda: DepthRecorder(ref, seen))
        for i in range(100):
            await ref.tell(i)
        await trio.testing.wait_all_tasks_blocked()
        assert len(seen) == 100
        assert min(seen) >= 0
        statistics = ref.statistics()
        assert statistics.depth == 0
        assert 1 <= statistics.peak <= 4
        nursery.cancel_scope.cancel()


async def test_blocked_senders_do_not_count_beyond_the_capacity() -> None:
    mailbox = Mailbox[int]("x", 2)
    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(mailbox.put, i)
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.statistics().depth == 2  # three senders wait for room
        assert mailbox.statistics().peak == 2
        inbox = mailbox.open_inbox()
        taken = [await inbox.receive() for _ in range(5)]
        assert sorted(taken) == [0, 1, 2, 3, 4]
        assert mailbox.statistics().depth == 0
        assert mailbox.statistics().peak == 2


async def test_a_cancelled_put_is_not_counted() -> None:
    mailbox = Mailbox[int]("x", 1)
    mailbox.put_nowait(0)
    with trio.move_on_after(0.01) as waited:
        await mailbox.put(1)  # no room: waits, then is cancelled
    assert waited.cancelled_caught
    assert mailbox.statistics().depth == 1
    inbox = mailbox.open_inbox()
    assert await inbox.receive() == 0
    assert mailbox.statistics().depth == 0
    assert inbox.drain_nowait(10) == []  # the cancelled message was never queued


async def test_closing_drops_what_is_queued_and_the_depth_is_zero() -> None:
    mailbox = Mailbox[int]("x", 4)
    for i in range(3):
        mailbox.put_nowait(i)
    mailbox.close()
    statistics = mailbox.statistics()
    assert (statistics.depth, statistics.peak, statistics.closed) == (0, 3, True)


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=6),
    bursts=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=6),
    senders=st.integers(min_value=1, max_value=4),
    handle_yields=st.booleans(),
)
def test_depth_stays_within_zero_and_the_capacity(
    capacity: int, bursts: list[int], senders: int, handle_yields: bool
) -> None:
    seen: list[int] = []

    class Recorder(Actor[int]):
        async def handle(self, message: int) -> None:
            seen.append(ref.statistics().depth)
            if handle_yields:
                await trio.lowlevel.checkpoint()

    ref = ActorRef[int]("x", mailbox_size=capacity)

    async def send(count: int) -> None:
        for i in range(count):
            await ref.tell(i)
            seen.append(ref.statistics().depth)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_actor, ref, Recorder)
            for burst in bursts:
                async with trio.open_nursery() as senders_nursery:
                    for _ in range(senders):
                        senders_nursery.start_soon(send, burst)
            await trio.testing.wait_all_tasks_blocked()
            assert ref.statistics().depth == 0
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert all(0 <= depth <= capacity for depth in seen)
    assert ref.statistics().peak <= capacity
