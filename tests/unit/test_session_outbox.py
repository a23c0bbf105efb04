"""The session outbox: bounded, wakes its writer, makes producers wait for room."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from notifactor.actors.session_outbox import Outbox, Outgoing


def frame(n: int) -> Outgoing:
    return Outgoing(text=f"f{n}")


async def test_put_nowait_refuses_beyond_the_limit_and_keeps_order() -> None:
    outbox = Outbox(2)
    assert outbox.put_nowait(frame(1))
    assert outbox.put_nowait(frame(2))
    assert not outbox.put_nowait(frame(3))
    assert [outbox.take_nowait(), outbox.take_nowait(), outbox.take_nowait()] == [
        frame(1),
        frame(2),
        None,
    ]
    assert len(outbox) == 0


async def test_a_queued_frame_wakes_the_waiting_writer() -> None:
    outbox = Outbox(4)
    woke = trio.Event()

    async def writer() -> None:
        await outbox.wait_queued()
        woke.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        assert not woke.is_set()
        outbox.put_nowait(frame(1))
        with trio.fail_after(1):
            await woke.wait()


async def test_put_waits_for_room() -> None:
    outbox = Outbox(1)
    outbox.put_nowait(frame(1))
    done = trio.Event()

    async def producer() -> None:
        await outbox.put(frame(2))
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        assert outbox.take_nowait() == frame(1)
        with trio.fail_after(1):
            await done.wait()
    assert outbox.take_nowait() == frame(2)


async def test_waiting_is_cancellable_and_single_consumer() -> None:
    outbox = Outbox(1)
    with trio.move_on_after(0.01) as scope:
        await outbox.wait_queued()
    assert scope.cancelled_caught
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.wait_queued)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await outbox.wait_queued()
        nursery.cancel_scope.cancel()


async def test_released_frames_go_beyond_the_limit_in_order_and_count_as_backlog() -> None:
    outbox = Outbox(2)
    released = [Outgoing(text=f"r{n}", released=True) for n in range(5)]
    assert outbox.put_nowait(frame(0))
    for outgoing in released:
        assert outbox.put_nowait(outgoing)  # never refused
    assert len(outbox) == 6
    assert outbox.backlogged
    # Only frames that are not released count against the limit: one more fits.
    assert outbox.put_nowait(frame(1))
    assert not outbox.put_nowait(frame(2))
    taken = [outbox.take_nowait() for _ in range(7)]
    assert taken == [frame(0), *released, frame(1)]
    assert outbox.take_nowait() is None
    # Taking released frames gave back no room they never took.
    assert outbox.put_nowait(frame(3))
    assert outbox.put_nowait(frame(4))
    assert not outbox.put_nowait(frame(5))
