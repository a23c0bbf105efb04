"""The edge's one timer for idle session writers."""

from __future__ import annotations

import math

import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from notifactor.actors.stop import StopSignal, set_stop_signal
from notifactor.edge.session_clock import SessionClock


@given(
    alarms=st.lists(st.integers(min_value=0, max_value=50), max_size=40),
    nows=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
)
def test_ring_wakes_exactly_what_is_due_earliest_first(alarms: list[int], nows: list[int]) -> None:
    clock = SessionClock()
    rung: list[int] = []
    for index, when in enumerate(alarms):
        clock.wake_at(float(when), lambda index=index: rung.append(index))  # type: ignore[misc]
    for now in sorted(nows):
        before = len(rung)
        count = clock.ring(float(now))
        expected = sorted(
            (i for i, when in enumerate(alarms) if when <= now),
            key=lambda i: (alarms[i], i),  # by time, then in the order they were set
        )
        assert rung == expected
        assert count == len(rung) - before
    assert len(clock) == len(alarms) - len(rung)


async def test_alarms_ring_on_time_and_an_earlier_one_cuts_the_sleep_short(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = SessionClock()
    rang: list[tuple[str, float]] = []

    def alarm(name: str) -> None:
        rang.append((name, trio.current_time()))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(clock.run)
        clock.wake_at(start + 30, lambda: alarm("late"))
        await trio.sleep(1)  # the clock sleeps until start + 30 now
        clock.wake_at(start + 5, lambda: alarm("early"))
        clock.wake_at(start + 0.5, lambda: alarm("past"))  # already due: rings at once
        await trio.sleep(40)
        nursery.cancel_scope.cancel()
    assert [name for name, _ in rang] == ["past", "early", "late"]
    assert [at - start for _, at in rang] == [1.0, 5.0, 30.0]


async def test_a_stop_request_ends_the_clock(autojump_clock: trio.testing.MockClock) -> None:
    clock = SessionClock()
    stop = StopSignal()
    clock.wake_at(math.inf, lambda: None)  # never due

    async def supervised() -> None:
        set_stop_signal(stop)
        await clock.run()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervised)
        await trio.sleep(3)
        stop.request()
    assert trio.current_time() == 3.0
    assert stop.registered == 0
