"""Siblings that crash together restart in one round, counted once.

With ``one_for_all`` and ``rest_for_one`` a crash restarts siblings too. When
several children fail on a common cause at the same moment, their exits
reach the supervisor one after the other; the first round must restart all
of them, in start order, and the exits still queued must not start another.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from notifactor.domain.backoff import BackoffPolicy
from notifactor.supervisors import Strategy, Supervisor

from .probe import Probe

NO_BACKOFF = BackoffPolicy(min_s=0.0, max_s=0.0, jitter=0.0)


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
@pytest.mark.parametrize("first", ["a", "b"])
async def test_two_children_crashing_together_restart_once_in_start_order(
    autojump_clock: trio.testing.MockClock, strategy: Strategy, first: str
) -> None:
    probe = Probe()
    sup = Supervisor(
        "sup",
        [probe.spec("a"), probe.spec("b"), probe.spec("c")],
        strategy=strategy,
        intensity=1,  # one round is fine; a second one would give up
        period_s=60.0,
        backoff=NO_BACKOFF,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.log.clear()
        second = "b" if first == "a" else "a"
        probe.crash(first)
        probe.crash(second)
        await probe.wait_for("ready", "c")
        await trio.testing.wait_all_tasks_blocked()
        assert probe.events("start") == [("start", "a"), ("start", "b"), ("start", "c")]
        statistics = sup.statistics()
        assert statistics.state == "running"
        assert [(c.id, c.state, c.restarts) for c in statistics.children] == [
            ("a", "running", 1),
            ("b", "running", 1),
            ("c", "running", 1),
        ]
        sup.request_stop()


async def test_a_younger_sibling_crashing_alone_still_restarts_only_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = Supervisor(
        "sup",
        [probe.spec("a"), probe.spec("b"), probe.spec("c")],
        strategy="rest_for_one",
        backoff=NO_BACKOFF,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.log.clear()
        probe.crash("b")
        await probe.wait_for("ready", "c")
        await trio.testing.wait_all_tasks_blocked()
        assert probe.events("start") == [("start", "b"), ("start", "c")]
        assert [c.restarts for c in sup.statistics().children] == [0, 1, 1]
        sup.request_stop()


async def test_a_transient_sibling_returning_meanwhile_is_not_brought_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = Supervisor(
        "sup",
        [probe.spec("a"), probe.spec("b", restart="transient"), probe.spec("c")],
        strategy="one_for_all",
        backoff=NO_BACKOFF,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.log.clear()
        probe.finish("b")  # a normal exit: b stays down
        probe.crash("c")
        await probe.wait_for("ready", "c")
        await trio.testing.wait_all_tasks_blocked()
        assert probe.events("start") == [("start", "a"), ("start", "c")]
        assert [(c.id, c.state) for c in sup.statistics().children] == [
            ("a", "running"),
            ("b", "stopped"),
            ("c", "running"),
        ]
        sup.request_stop()
