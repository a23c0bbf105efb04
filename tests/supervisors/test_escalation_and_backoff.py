"""Restart intensity, escalation to the parent, and restart backoff timing."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from notifactor.domain.backoff import BackoffPolicy
from notifactor.supervisors import Supervisor, SupervisorGaveUp

from .probe import Boom, Probe

NO_BACKOFF = BackoffPolicy(min_s=0.0, max_s=0.0, jitter=0.0)


async def test_intensity_exceeded_stops_children_in_reverse_and_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = Supervisor(
        "sup", [probe.spec("a"), probe.spec("b"), probe.spec("c")], intensity=2, backoff=NO_BACKOFF
    )
    with pytest.RaisesGroup(SupervisorGaveUp) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            for n in range(1, 4):
                probe.crash("b")
                await probe.wait_for("crashed", "b", n)
                if n < 3:
                    await probe.wait_for("ready", "b", n + 1)
            await trio.sleep_forever()
    error = caught.value.exceptions[0]
    assert isinstance(error, SupervisorGaveUp)
    assert (error.supervisor_id, error.child_id) == ("sup", "b")
    assert error.reason.message == "b crashed"
    assert isinstance(error.__cause__, Boom)
    assert probe.log[-2:] == [("stopped", "c"), ("stopped", "a")]
    assert sup.statistics().state == "stopped"


async def test_restarts_spread_over_more_than_the_period_are_tolerated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = Supervisor("sup", [probe.spec("a")], intensity=1, period_s=5.0, backoff=NO_BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for n in range(1, 6):
            probe.crash("a")
            await probe.wait_for("ready", "a", n + 1)
            await trio.sleep(5.0)  # one restart per window is within intensity=1
        sup.request_stop()
    assert sup.statistics().children[0].restarts == 5


async def test_escalation_through_two_levels(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    inner = Supervisor("inner", [probe.spec("worker")], intensity=1, backoff=NO_BACKOFF)
    middle = Supervisor(
        "middle", [probe.spec("sibling"), inner.child_spec()], intensity=1, backoff=NO_BACKOFF
    )
    root = Supervisor("root", [middle.child_spec()], intensity=0, backoff=NO_BACKOFF)

    async def keep_crashing_worker() -> None:
        while True:
            crashed = probe.count("crashed", "worker")
            await probe.wait_for("ready", "worker", crashed + 1)
            probe.crash("worker")
            await probe.wait_for("crashed", "worker", crashed + 1)

    with pytest.RaisesGroup(SupervisorGaveUp) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            nursery.start_soon(keep_crashing_worker)
            await trio.sleep_forever()
    top = caught.value.exceptions[0]
    assert isinstance(top, SupervisorGaveUp)
    assert (top.supervisor_id, top.child_id) == ("root", "middle")
    middle_gave_up = top.__cause__
    assert isinstance(middle_gave_up, SupervisorGaveUp)
    assert (middle_gave_up.supervisor_id, middle_gave_up.child_id) == ("middle", "inner")
    inner_gave_up = middle_gave_up.__cause__
    assert isinstance(inner_gave_up, SupervisorGaveUp)
    assert (inner_gave_up.supervisor_id, inner_gave_up.child_id) == ("inner", "worker")
    # inner gave up twice (middle restarted it once), each time after 2 crashes.
    assert probe.count("crashed", "worker") == 4
    assert probe.count("start", "sibling") == 1
    assert probe.log[-1] == ("stopped", "sibling")


async def test_backoff_doubles_up_to_the_cap(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    policy = BackoffPolicy(min_s=1.0, max_s=4.0, jitter=0.0, reset_after_s=100.0)
    sup = Supervisor("sup", [probe.spec("a")], intensity=100, period_s=1.0, backoff=policy)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for n in range(1, 6):
            probe.crash("a")
            await probe.wait_for("ready", "a", n + 1)
        sup.request_stop()
    crashes = probe.times_of("crashed", "a")
    starts = probe.times_of("start", "a")[1:]
    delays = [start - crash for crash, start in zip(crashes, starts, strict=True)]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]


async def test_backoff_resets_after_a_quiet_period(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    policy = BackoffPolicy(min_s=1.0, max_s=8.0, jitter=0.0, reset_after_s=30.0)
    sup = Supervisor("sup", [probe.spec("a")], intensity=100, backoff=policy)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for n in range(1, 4):
            probe.crash("a")
            await probe.wait_for("ready", "a", n + 1)
        await trio.sleep(30.0)  # healthy for reset_after_s
        probe.crash("a")
        await probe.wait_for("ready", "a", 5)
        sup.request_stop()
    crashes = probe.times_of("crashed", "a")
    starts = probe.times_of("start", "a")[1:]
    delays = [start - crash for crash, start in zip(crashes, starts, strict=True)]
    assert delays == [1.0, 2.0, 4.0, 1.0]


async def test_jittered_delays_stay_within_bounds(autojump_clock: trio.testing.MockClock) -> None:
    import random

    probe = Probe()
    policy = BackoffPolicy(min_s=1.0, max_s=2.0, jitter=0.5, reset_after_s=100.0)
    sup = Supervisor(
        "sup",
        [probe.spec("a")],
        intensity=100,
        period_s=1.0,
        backoff=policy,
        random=random.Random(7),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for n in range(1, 8):
            probe.crash("a")
            await probe.wait_for("ready", "a", n + 1)
        sup.request_stop()
    crashes = probe.times_of("crashed", "a")
    starts = probe.times_of("start", "a")[1:]
    delays = [start - crash for crash, start in zip(crashes, starts, strict=True)]
    assert all(1.0 <= d <= 2.0 for d in delays)
    assert len(set(delays[1:])) > 1  # jitter spreads capped delays out
