"""The handoff of client messages from trio-websocket's reader task to a session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from notifactor.edge.message_handoff import HandoffClosed, MessageHandoff


async def test_a_second_message_waits_until_the_first_is_taken() -> None:
    handoff = MessageHandoff()
    rang: list[str] = []
    handoff.watch(lambda: rang.append("ready"))
    await handoff.put("one")
    assert rang == ["ready"]
    second_in = False

    async def put_second() -> None:
        nonlocal second_in
        await handoff.put("two")
        second_in = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(put_second)
        await trio.testing.wait_all_tasks_blocked()
        assert not second_in  # held back, as a full channel of one holds its sender
        assert handoff.take() == "one"
        await trio.testing.wait_all_tasks_blocked()
        assert second_in
    assert rang == ["ready", "ready"]
    assert handoff.take() == "two"
    assert handoff.take() is None


async def test_watch_reports_at_once_what_is_already_waiting() -> None:
    handoff = MessageHandoff()
    await handoff.put("early")  # before anybody watches: nothing to call
    rang: list[str] = []
    handoff.watch(lambda: rang.append("ready"))
    assert rang == ["ready"]
    ended = MessageHandoff()
    ended.end()
    ended.watch(lambda: rang.append("ended"))
    assert rang == ["ready", "ended"]


async def test_the_readers_end_still_hands_over_the_last_message() -> None:
    handoff = MessageHandoff()
    async with handoff.sender as sender:
        await sender.send("last")
    assert handoff.take() == "last"
    with pytest.raises(HandoffClosed):
        handoff.take()
    with pytest.raises(trio.ClosedResourceError):
        await handoff.put("after the end")


async def _put_waiting_while(
    handoff: MessageHandoff, close: Callable[[], Awaitable[None]]
) -> list[type[Exception]]:
    """Hold one message, start a put that waits for room, then ``close()``: what the put raised."""
    await handoff.put("held")
    raised: list[type[Exception]] = []

    async def put_more() -> None:
        try:
            await handoff.put("more")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raised.append(type(error))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(put_more)
            await trio.testing.wait_all_tasks_blocked()
            await close()
    return raised


async def test_a_local_close_drops_what_is_held_and_frees_a_waiting_reader() -> None:
    handoff = MessageHandoff()
    # trio-websocket's reader expects BrokenResourceError here.
    assert await _put_waiting_while(handoff, handoff.receiver.aclose) == [trio.BrokenResourceError]
    with pytest.raises(HandoffClosed):
        handoff.take()


async def test_a_cancelled_put_hands_over_nothing() -> None:
    handoff = MessageHandoff()
    await handoff.put("first")
    with trio.move_on_after(0.01):
        await handoff.put("never")
    assert handoff.take() == "first"
    assert handoff.take() is None


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(st.text(max_size=3), max_size=12),
    drop_after=st.none() | st.integers(min_value=0, max_value=12),
    yields=st.lists(st.integers(min_value=0, max_value=3), min_size=12, max_size=12),
)
def test_the_session_gets_every_message_once_in_order_until_the_end(
    messages: list[str], drop_after: int | None, yields: list[int]
) -> None:
    """A reader task putting, a session answering when called back: a channel's semantics.

    Whatever the interleaving, the session takes exactly the messages put, in
    order, then the end; with a local close after ``drop_after`` messages it
    takes a prefix of them and the reader's later puts fail as trio-websocket
    expects.
    """

    async def scenario() -> tuple[list[str], list[str], bool]:
        handoff = MessageHandoff()
        taken: list[str] = []
        put: list[str] = []
        ended = False
        answering = False
        wake = trio.Event()

        def ready() -> None:
            wake.set()

        async def reader() -> None:
            try:
                async with handoff.sender as sender:
                    for index, message in enumerate(messages):
                        for _ in range(yields[index % len(yields)]):
                            await trio.lowlevel.checkpoint()
                        await sender.send(message)
                        put.append(message)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        async def session() -> None:
            nonlocal ended, answering, wake
            handoff.watch(ready)
            while True:
                await wake.wait()
                wake = trio.Event()
                answering = True
                try:
                    while (message := handoff.take()) is not None:
                        taken.append(message)
                        if drop_after is not None and len(taken) == drop_after:
                            await handoff.receiver.aclose()
                        await trio.lowlevel.checkpoint()
                except HandoffClosed:
                    ended = True
                    return
                finally:
                    answering = False

        async with trio.open_nursery() as nursery:
            nursery.start_soon(session)
            nursery.start_soon(reader)
            if drop_after == 0:
                await handoff.receiver.aclose()
        return taken, put, ended

    taken, put, ended = trio.run(scenario)
    assert ended
    if drop_after is None:
        assert taken == messages
        assert put == messages
    else:
        assert taken == messages[:drop_after]
        # The close frees the reader waiting to put the next one, which fails.
        assert put == taken


async def test_the_readers_end_closed_from_elsewhere_frees_a_reader_waiting_for_room() -> None:
    """trio-websocket closes the sender from a writing task when the connection breaks."""
    handoff = MessageHandoff()
    assert await _put_waiting_while(handoff, handoff.sender.aclose) == [trio.ClosedResourceError]
    assert handoff.take() == "held"  # what was handed over is still taken
    with pytest.raises(HandoffClosed):
        handoff.take()
