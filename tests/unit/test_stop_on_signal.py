"""Stopping on signals: graceful first, bounded always."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import trio
import trio.testing

from notifactor.actors.stop import StopSignal, current_stop_signal, set_hurry_signal
from notifactor.bootstrap import HARD_STOP_MARGIN_S, stop_on_signal
from notifactor.supervisors import ChildSpec, DynamicSupervisor, Supervisor

GRACE_S = 10.0


async def _running(nursery: trio.Nursery, node: Supervisor | DynamicSupervisor) -> trio.Event:
    """Start ``node`` in ``nursery``; the event is set once its ``run`` has returned."""
    stopped = trio.Event()

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await node.run(task_status=task_status)
        stopped.set()

    await nursery.start(run)
    return stopped


async def _signals(receive: trio.MemoryReceiveChannel[int]) -> AsyncIterator[int]:
    async for signum in receive:
        yield signum


async def stubborn(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """A child that ignores the graceful stop request (a stuck drain, say)."""
    task_status.started()
    await trio.sleep_forever()


async def polite(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    await current_stop_signal().wait()


def _tree() -> Supervisor:
    """A root whose children (one nested, one a pool member) would each take 60 s."""
    nested = Supervisor("nested", [ChildSpec(id="stuck-deep", start=stubborn, shutdown=60.0)])
    return Supervisor(
        "root",
        [
            ChildSpec(id="polite", start=polite, shutdown=60.0),
            nested.child_spec(shutdown=120.0),
            ChildSpec(id="stuck", start=stubborn, shutdown=60.0),
        ],
    )


async def _stop(second_signal_after: float | None) -> tuple[float, StopSignal]:
    """Run the tree, signal it, and return how long its stop took."""
    root, hurry = _tree(), StopSignal()
    set_hurry_signal(hurry)
    send, receive = trio.open_memory_channel[int](4)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signal, _signals(receive), root, GRACE_S, hurry)
        stopped = await _running(nursery, root)
        await send.send(signal.SIGTERM)
        started = trio.current_time()
        if second_signal_after is not None:
            await trio.sleep(second_signal_after)
            await send.send(signal.SIGINT)
        await stopped.wait()
        took = trio.current_time() - started
        nursery.cancel_scope.cancel()
    return took, hurry


async def test_a_stop_that_overruns_the_grace_period_is_cut_short(
    autojump_clock: trio.testing.MockClock,
) -> None:
    took, hurry = await _stop(second_signal_after=None)
    assert hurry.requested
    assert GRACE_S + HARD_STOP_MARGIN_S <= took < GRACE_S + HARD_STOP_MARGIN_S + 0.5


async def test_a_second_signal_cuts_the_stop_short_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    took, hurry = await _stop(second_signal_after=1.0)
    assert hurry.requested
    assert 1.0 <= took < 1.5


async def test_a_stop_within_its_budgets_is_not_hurried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    root, hurry = Supervisor("root", [ChildSpec(id="polite", start=polite)]), StopSignal()
    set_hurry_signal(hurry)
    send, receive = trio.open_memory_channel[int](4)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signal, _signals(receive), root, GRACE_S, hurry)
        stopped = await _running(nursery, root)
        await send.send(signal.SIGTERM)
        await stopped.wait()
        nursery.cancel_scope.cancel()
    assert not hurry.requested


async def test_a_hurry_cuts_a_pool_s_stop_short(autojump_clock: trio.testing.MockClock) -> None:
    pool, hurry = DynamicSupervisor("pool"), StopSignal()
    set_hurry_signal(hurry)
    async with trio.open_nursery() as nursery:
        stopped = await _running(nursery, pool)
        await pool.start_child(ChildSpec(id="stuck", start=stubborn, shutdown=60.0))
        pool.request_stop()
        await trio.sleep(1.0)
        started = trio.current_time()
        hurry.request()
        await stopped.wait()
        assert trio.current_time() - started < 0.5
