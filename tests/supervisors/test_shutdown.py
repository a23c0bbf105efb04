"""Stopping trees: budgets, brutal kills, cancellation, no restarts while stopping."""

from __future__ import annotations

import trio
import trio.testing

from notifactor.domain.backoff import BackoffPolicy
from notifactor.supervisors import Supervisor

from .probe import Probe


async def test_child_ignoring_the_stop_request_is_cancelled_after_its_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = Supervisor(
        "sup", [probe.spec("polite"), probe.spec("stubborn", ignore_stop=True, shutdown=2.5)]
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        began = trio.current_time()
        sup.request_stop()
    assert probe.log[-2:] == [("killed", "stubborn"), ("stopped", "polite")]
    assert probe.times_of("killed", "stubborn") == [began + 2.5]
    assert trio.current_time() == began + 2.5


async def test_brutal_shutdown_cancels_at_once(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    sup = Supervisor("sup", [probe.spec("a", ignore_stop=True, shutdown="brutal")])
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        began = trio.current_time()
        sup.request_stop()
    assert probe.log[-1] == ("killed", "a")
    assert trio.current_time() == began


async def test_cancelling_a_tree_stops_everything_in_reverse_order_within_budgets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    inner = Supervisor(
        "inner", [probe.spec("i1"), probe.spec("i2", ignore_stop=True)], shutdown_s=1.0
    )
    root = Supervisor(
        "root",
        [probe.spec("r1"), inner.child_spec(), probe.spec("r2", ignore_stop=True)],
        shutdown_s=3.0,
    )
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            began = trio.current_time()
            scope.cancel()
    assert scope.cancelled_caught
    assert probe.events("stopped", "killed") == [
        ("killed", "r2"),  # after its 3 s budget
        ("killed", "i2"),  # after its 1 s budget
        ("stopped", "i1"),
        ("stopped", "r1"),
    ]
    assert trio.current_time() == began + 3.0 + 1.0
    assert root.statistics().state == "stopped"
    assert inner.statistics().state == "stopped"


async def test_cancellation_during_a_restart_backoff_does_not_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    policy = BackoffPolicy(min_s=10.0, max_s=10.0, jitter=0.0)
    sup = Supervisor("sup", [probe.spec("a"), probe.spec("b")], backoff=policy)
    with trio.move_on_after(100) as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            probe.crash("b")
            await probe.wait_for("crashed", "b")
            crashed_at = trio.current_time()
            await trio.sleep(1.0)
            assert sup.statistics().children[1].state == "restarting"
            scope.cancel()
    assert trio.current_time() == crashed_at + 1.0
    assert probe.count("start", "b") == 1
    assert probe.log[-1] == ("stopped", "a")


async def test_stop_request_during_a_restart_backoff_does_not_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    policy = BackoffPolicy(min_s=10.0, max_s=10.0, jitter=0.0)
    sup = Supervisor("sup", [probe.spec("a")], backoff=policy)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.crash("a")
        await probe.wait_for("crashed", "a")
        sup.request_stop()
    assert probe.count("start", "a") == 1


async def test_supervisor_being_cancelled_does_not_restart_a_child_crashing_on_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from notifactor.supervisors import ChildSpec, current_stop_signal

    starts = 0

    async def crashes_when_stopped(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        nonlocal starts
        starts += 1
        task_status.started()
        await current_stop_signal().wait()
        raise RuntimeError("failed to flush")

    sup = Supervisor("sup", [ChildSpec(id="x", start=crashes_when_stopped)])
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            scope.cancel()
    assert starts == 1
    crash = sup.statistics().children[0].last_crash
    assert crash is not None
    assert crash.message == "failed to flush"
