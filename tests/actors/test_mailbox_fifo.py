"""Senders waiting for room in a full mailbox get it in the order they came."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.lowlevel
import trio.testing

from notifactor.actors.errors import ActorStopped, MailboxFull
from notifactor.actors.mailbox import Mailbox


async def test_puts_are_taken_in_the_order_they_were_made_under_contention() -> None:
    box: Mailbox[int] = Mailbox("fifo", 2)
    inbox = box.open_inbox()
    order = itertools.count()
    received: list[int] = []

    async def sender() -> None:
        for _ in range(200):
            await box.put(next(order))  # numbered when the put starts
            await trio.lowlevel.checkpoint()

    async def consumer() -> None:
        for _ in range(5 * 200):
            received.append(await inbox.receive())
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(sender)
        nursery.start_soon(consumer)
    assert received == sorted(received)
    assert box.statistics().depth == 0


async def test_a_newcomer_does_not_take_the_slot_of_a_waiting_sender() -> None:
    box: Mailbox[str] = Mailbox("fifo", 1)
    inbox = box.open_inbox()
    box.put_nowait("first")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.put, "waiting")
        await trio.testing.wait_all_tasks_blocked()
        assert await inbox.receive() == "first"  # the slot goes to "waiting" at once
        with pytest.raises(MailboxFull):
            box.put_nowait("newcomer")
        assert await inbox.receive() == "waiting"
    assert box.statistics().depth == 0


async def test_a_cancelled_waiting_put_queues_nothing_and_a_close_fails_the_others() -> None:
    box: Mailbox[str] = Mailbox("fifo", 1)
    inbox = box.open_inbox()
    box.put_nowait("first")
    failures: list[BaseException] = []

    async def put_expecting_stop(message: str) -> None:
        try:
            await box.put(message)
        except ActorStopped as error:
            failures.append(error)

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(0.01):
            await box.put("gave up")
        nursery.start_soon(put_expecting_stop, "a")
        nursery.start_soon(put_expecting_stop, "b")
        await trio.testing.wait_all_tasks_blocked()
        assert box.statistics().depth == 1
        box.close()
    assert len(failures) == 2
    with pytest.raises(trio.EndOfChannel):  # "first" was dropped with the close
        await inbox.receive()
