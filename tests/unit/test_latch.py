"""The latch: a trio.Event that costs one only once somebody waits."""

from __future__ import annotations

import trio
import trio.testing

from notifactor.actors.latch import Latch


async def test_waiters_wake_when_set_and_later_waits_return_at_once() -> None:
    latch = Latch()
    woken: list[int] = []

    async def waiter(index: int) -> None:
        await latch.wait()
        woken.append(index)

    async with trio.open_nursery() as nursery:
        for index in range(3):
            nursery.start_soon(waiter, index)
        await trio.testing.wait_all_tasks_blocked()
        assert woken == []
        assert not latch.is_set()
        latch.set()
        latch.set()  # idempotent
    assert sorted(woken) == [0, 1, 2]
    assert latch.is_set()
    with trio.testing.assert_checkpoints():
        await latch.wait()
