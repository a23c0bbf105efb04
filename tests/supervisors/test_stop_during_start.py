"""A stop (or a cancellation) that lands while a child is still starting.

A child is protected from its supervisor's cancellation only once its
supervisor holds it. A child whose start was aborted by a stop must stay
cancellable, so that the supervisor returns promptly instead of waiting for
a child nobody will ever ask to stop.

Each scenario runs under a deadline of virtual time; if the supervisor is
stuck at the deadline, the test releases the child so that it ends, and fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import trio
import trio.testing

from notifactor.actors.stop import current_stop_signal
from notifactor.supervisors import ChildSpec, DynamicSupervisor, Supervisor

DEADLINE_S = 30.0


@attrs.define
class SlowStarter:
    """A child whose last start step cannot be cancelled (a shielded connect, say).

    Once ready it waits for its stop request, or for ``release`` (the test's
    way out when the supervisor is stuck).
    """

    step_s: float = 1.0
    entered: trio.Event = attrs.Factory(trio.Event)
    release: trio.Event = attrs.Factory(trio.Event)
    outcomes: list[str] = attrs.Factory(list)

    async def start(self, *, task_status: trio.TaskStatus[None]) -> None:
        self.entered.set()
        with trio.CancelScope(shield=True):
            await trio.sleep(self.step_s)
        task_status.started()
        outcome = "cancelled"
        try:
            with trio.CancelScope() as scope:
                current_stop_signal().register(scope)
                await self.release.wait()
            outcome = "stopped" if scope.cancelled_caught else "released"
        finally:
            self.outcomes.append(outcome)


async def finishes_in_time(
    scenario: Callable[[], Awaitable[object]], unstick: Callable[[], None]
) -> bool:
    """Whether ``scenario`` ends before the deadline; ``unstick`` it if not."""
    done = trio.Event()

    async def run() -> None:
        await scenario()
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        with trio.move_on_after(DEADLINE_S):
            await done.wait()
        finished = done.is_set()
        if not finished:
            unstick()
    return finished


async def test_a_stop_request_during_an_uncancellable_start_step_stops_the_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = SlowStarter()
    sup = Supervisor("sup", [ChildSpec(id="a", start=child.start, shutdown=1.0)])

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.run)
            await child.entered.wait()
            sup.request_stop()  # SIGTERM during boot

    assert await finishes_in_time(scenario, child.release.set)
    assert child.outcomes == ["cancelled"]  # never handed over: it does not outlive the stop
    assert sup.statistics().state == "stopped"


async def test_cancelling_a_supervisor_during_an_uncancellable_start_step_ends_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = SlowStarter()
    sup = Supervisor("sup", [ChildSpec(id="a", start=child.start, shutdown=1.0)])

    async def scenario() -> None:
        with trio.CancelScope() as outer:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sup.run)
                await child.entered.wait()
                outer.cancel()
        assert outer.cancelled_caught

    assert await finishes_in_time(scenario, child.release.set)
    assert child.outcomes == ["cancelled"]
    assert sup.statistics().state == "stopped"


async def test_a_stop_in_the_tick_a_nested_leaf_becomes_ready_stops_the_tree(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcomes: list[str] = []
    holder: list[Supervisor] = []

    async def leaf(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        holder[0].request_stop()  # a SIGTERM handled in this same tick
        await current_stop_signal().wait()
        outcomes.append("stopped")

    inner = Supervisor("gateway", [ChildSpec(id="ws-listener", start=leaf, shutdown=1.0)])
    root = Supervisor("root", [inner.child_spec()])
    holder.append(root)

    assert await finishes_in_time(root.run, inner.request_stop)
    assert outcomes == ["stopped"]  # the inner supervisor still stops its child gracefully
    assert root.statistics().state == "stopped"
    assert inner.statistics().state == "stopped"


async def test_a_pool_child_whose_caller_gave_up_during_its_start_is_not_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = SlowStarter(step_s=2.0)
    pool = DynamicSupervisor("sessions", max_children=4)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)

        async def caller() -> None:
            with trio.move_on_after(1.0):  # e.g. a connect timeout
                await pool.start_child(ChildSpec(id="s1", start=child.start, shutdown=1.0))

        assert await finishes_in_time(caller, child.release.set)
        assert child.outcomes == ["cancelled"]
        assert "s1" not in pool
        pool.request_stop()


async def test_a_pool_restart_that_a_stop_overtakes_ends_with_the_pool(
    autojump_clock: trio.testing.MockClock,
) -> None:
    crashes = [1]
    child = SlowStarter()

    async def start(*, task_status: trio.TaskStatus[None]) -> None:
        if crashes:
            crashes.pop()
            task_status.started()
            raise RuntimeError("first incarnation crashes once ready")
        await child.start(task_status=task_status)

    pool = DynamicSupervisor("consumers", max_children=4)

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            await pool.start_child(ChildSpec(id="c0", start=start, restart="permanent"))
            await child.entered.wait()  # the restart is in its uncancellable step
            pool.request_stop()

    assert await finishes_in_time(scenario, child.release.set)
    assert len(child.outcomes) == 1  # stopped or cancelled, and not restarted again
    assert len(pool) == 0
