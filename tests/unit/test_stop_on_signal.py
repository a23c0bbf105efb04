"""Stopping on signals: graceful first, bounded always."""

from __future__ import annotations

import signal

import attrs
import trio
import trio.testing

from notifactor.bootstrap import HARD_STOP_MARGIN_S, stop_on_signal

GRACE_S = 10.0


@attrs.define
class Root:
    stop_requests: int = 0

    def request_stop(self) -> None:
        self.stop_requests += 1


async def _signals(receive: trio.MemoryReceiveChannel[int]):  # type: ignore[no-untyped-def]
    async for signum in receive:
        yield signum


async def _run(send_second_after: float | None) -> tuple[Root, trio.CancelScope, float]:
    root, hard_stop = Root(), trio.CancelScope()
    send, receive = trio.open_memory_channel[int](4)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signal, _signals(receive), root, GRACE_S, hard_stop)
        await send.send(signal.SIGTERM)
        started = trio.current_time()
        if send_second_after is not None:
            await trio.sleep(send_second_after)
            await send.send(signal.SIGINT)
        with hard_stop:
            await trio.sleep_forever()  # a tree that never finishes stopping
        took = trio.current_time() - started
    return root, hard_stop, took


async def test_a_stop_that_overruns_the_grace_period_is_cut_short(
    autojump_clock: trio.testing.MockClock,
) -> None:
    root, hard_stop, took = await _run(send_second_after=None)
    assert root.stop_requests == 1
    assert hard_stop.cancelled_caught
    assert took == GRACE_S + HARD_STOP_MARGIN_S


async def test_a_second_signal_cuts_the_stop_short_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    root, hard_stop, took = await _run(send_second_after=1.0)
    assert root.stop_requests == 1
    assert hard_stop.cancelled_caught
    assert took == 1.0
