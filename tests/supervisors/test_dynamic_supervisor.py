"""Dynamic supervisors: pools of children started and stopped by id."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from notifactor.domain.backoff import BackoffPolicy
from notifactor.supervisors import (
    ChildStartFailed,
    DuplicateChild,
    DynamicSupervisor,
    PoolFull,
    SupervisorGaveUp,
    SupervisorNotRunning,
)

from .probe import Probe

NO_BACKOFF = BackoffPolicy(min_s=0.0, max_s=0.0, jitter=0.0)


async def test_start_and_stop_children_by_id(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    pool = DynamicSupervisor("pool", max_children=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.start_child(probe.spec("s1"))
        await pool.start_child(probe.spec("s2"))
        assert pool.child_ids() == ["s1", "s2"]
        assert "s1" in pool
        assert await pool.stop_child("s1")
        assert probe.log[-1] == ("stopped", "s1")
        assert pool.child_ids() == ["s2"]
        assert not await pool.stop_child("s1")
        pool.request_stop()
    assert probe.log[-1] == ("stopped", "s2")
    assert len(pool) == 0


async def test_max_children_and_duplicates_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    pool = DynamicSupervisor("pool", max_children=2)
    with pytest.raises(SupervisorNotRunning):
        await pool.start_child(probe.spec("early"))
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.start_child(probe.spec("a"))
        with pytest.raises(DuplicateChild):
            await pool.start_child(probe.spec("a"))
        await pool.start_child(probe.spec("b"))
        with pytest.raises(PoolFull, match="full \\(2 children\\)"):
            await pool.start_child(probe.spec("c"))
        await pool.stop_child("a")
        await pool.start_child(probe.spec("c"))  # room again
        pool.request_stop()


async def test_per_child_restart_policy(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    pool = DynamicSupervisor("pool", backoff=NO_BACKOFF, default_restart="temporary")
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.start_child(probe.spec("session"))  # temporary by default
        await pool.start_child(probe.spec("consumer", restart="permanent"))
        probe.crash("session")
        probe.crash("consumer")
        await probe.wait_for("ready", "consumer", 2)
        await probe.wait_for("crashed", "session")
        await trio.testing.wait_all_tasks_blocked()
        assert pool.child_ids() == ["consumer"]
        stats = pool.statistics()
        assert [(c.id, c.restarts, c.state) for c in stats.children] == [("consumer", 1, "running")]
        pool.request_stop()


async def test_start_failure_is_reported_to_the_caller_and_not_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe(fail_before_ready={"bad": 1})
    pool = DynamicSupervisor("pool", intensity=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        with pytest.raises(ChildStartFailed, match="failed before ready"):
            await pool.start_child(probe.spec("bad"))
        assert "bad" not in pool
        await pool.start_child(probe.spec("bad"))  # the pool is still fine
        pool.request_stop()


async def test_shutdown_stops_all_children_concurrently_within_budgets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    pool = DynamicSupervisor("pool", shutdown_s=2.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        for n in range(3):
            await pool.start_child(probe.spec(f"stuck{n}", ignore_stop=True))
        await pool.start_child(probe.spec("polite"))
        began = trio.current_time()
        nursery.cancel_scope.cancel()
    assert trio.current_time() == began + 2.0  # not 3 x 2.0
    assert sorted(probe.events("stopped", "killed")) == [
        ("killed", "stuck0"),
        ("killed", "stuck1"),
        ("killed", "stuck2"),
        ("stopped", "polite"),
    ]
    assert len(pool) == 0


async def test_pool_gives_up_when_restarts_exceed_intensity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    pool = DynamicSupervisor("pool", intensity=1, backoff=NO_BACKOFF, default_restart="permanent")
    with pytest.RaisesGroup(SupervisorGaveUp) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            await pool.start_child(probe.spec("a"))
            await pool.start_child(probe.spec("b"))
            probe.crash("a")
            await probe.wait_for("ready", "a", 2)
            probe.crash("b")
            await trio.sleep_forever()
    error = caught.value.exceptions[0]
    assert isinstance(error, SupervisorGaveUp)
    assert (error.supervisor_id, error.child_id) == ("pool", "b")
    assert probe.log[-1] == ("stopped", "a")


async def test_stop_child_during_its_restart_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    pool = DynamicSupervisor(
        "pool", backoff=BackoffPolicy(min_s=5.0, max_s=5.0, jitter=0.0), default_restart="permanent"
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await pool.start_child(probe.spec("a"))
        probe.crash("a")
        await probe.wait_for("crashed", "a")
        await trio.sleep(1.0)
        assert await pool.stop_child("a")
        await trio.sleep(10.0)
        assert probe.count("start", "a") == 1
        pool.request_stop()


async def test_dynamic_pool_nested_in_a_static_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from notifactor.supervisors import Supervisor

    probe = Probe()
    pool = DynamicSupervisor("sessions")
    root = Supervisor("root", [probe.spec("listener"), pool.child_spec()])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await pool.start_child(probe.spec("ws-1"))
        root.request_stop()
    assert probe.events("stopped") == [("stopped", "ws-1"), ("stopped", "listener")]
