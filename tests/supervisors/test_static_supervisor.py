"""Static supervisors: ordering, strategies, restart types."""

from __future__ import annotations

import io
import json
import logging
import math

import pytest
import trio
import trio.testing

from notifactor.domain.backoff import BackoffPolicy
from notifactor.observability.logging import JsonLineFormatter
from notifactor.supervisors import Strategy, Supervisor

from .probe import Probe

NO_BACKOFF = BackoffPolicy(min_s=0.0, max_s=0.0, jitter=0.0)


def three(probe: Probe, strategy: Strategy, **kwargs: object) -> Supervisor:
    return Supervisor(
        "sup",
        [probe.spec("a"), probe.spec("b"), probe.spec("c")],
        strategy=strategy,
        backoff=NO_BACKOFF,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_children_start_in_order_each_after_the_previous_is_ready(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = three(probe, "one_for_one")
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert probe.log == [
            ("start", "a"),
            ("ready", "a"),
            ("start", "b"),
            ("ready", "b"),
            ("start", "c"),
            ("ready", "c"),
        ]
        sup.request_stop()
    assert probe.log[6:] == [("stopped", "c"), ("stopped", "b"), ("stopped", "a")]


async def test_one_for_one_restarts_only_the_crashed_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = three(probe, "one_for_one")
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.crash("b")
        await probe.wait_for("ready", "b", 2)
        assert probe.log[6:] == [("crashed", "b"), ("start", "b"), ("ready", "b")]
        sup.request_stop()
    restarts = {c.id: c.restarts for c in sup.statistics().children}
    assert restarts == {"a": 0, "b": 1, "c": 0}


async def test_one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = three(probe, "one_for_all")
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.crash("b")
        await probe.wait_for("ready", "c", 2)
        assert probe.log[6:] == [
            ("crashed", "b"),
            ("stopped", "c"),
            ("stopped", "a"),
            ("start", "a"),
            ("ready", "a"),
            ("start", "b"),
            ("ready", "b"),
            ("start", "c"),
            ("ready", "c"),
        ]
        sup.request_stop()


async def test_rest_for_one_restarts_the_crashed_child_and_the_younger_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = three(probe, "rest_for_one")
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.crash("b")
        await probe.wait_for("ready", "c", 2)
        assert probe.log[6:] == [
            ("crashed", "b"),
            ("stopped", "c"),
            ("start", "b"),
            ("ready", "b"),
            ("start", "c"),
            ("ready", "c"),
        ]
        assert probe.count("start", "a") == 1
        sup.request_stop()


async def test_restart_types(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    sup = Supervisor(
        "sup",
        [
            probe.spec("perm", restart="permanent"),
            probe.spec("trans-ok", restart="transient"),
            probe.spec("trans-crash", restart="transient"),
            probe.spec("temp", restart="temporary"),
        ],
        backoff=NO_BACKOFF,
        intensity=10,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.finish("perm")  # a permanent child is restarted even after a normal return
        probe.finish("trans-ok")  # a transient child that returns stays down
        probe.crash("trans-crash")  # ... but one that crashes is restarted
        probe.crash("temp")  # a temporary child is never restarted
        await probe.wait_for("ready", "perm", 2)
        await probe.wait_for("ready", "trans-crash", 2)
        await trio.testing.wait_all_tasks_blocked()
        sup.request_stop()
    assert probe.count("start", "trans-ok") == 1
    assert probe.count("start", "temp") == 1
    states = {c.id: (c.state, c.restarts) for c in sup.statistics().children}
    assert states["trans-ok"] == ("stopped", 0)
    assert states["temp"] == ("stopped", 0)
    assert states["perm"][1] == 1
    assert states["trans-crash"][1] == 1


async def test_one_for_all_does_not_restart_temporary_siblings(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = Supervisor(
        "sup",
        [probe.spec("temp", restart="temporary"), probe.spec("b")],
        strategy="one_for_all",
        backoff=NO_BACKOFF,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.crash("b")
        await probe.wait_for("ready", "b", 2)
        sup.request_stop()
    assert probe.count("start", "temp") == 1
    assert ("stopped", "temp") in probe.log


async def test_crash_reason_is_kept(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    sup = three(probe, "one_for_one")
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.crash("a")
        await probe.wait_for("ready", "a", 2)
        crash = sup.statistics().children[0].last_crash
        assert crash is not None
        assert crash.child_id == "a"
        assert crash.exc_type.endswith("Boom")
        assert crash.message == "a crashed"
        assert "Boom: a crashed" in crash.traceback
        sup.request_stop()


async def test_child_failing_before_ready_is_restarted_like_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe(fail_before_ready={"b": 2})
    sup = three(probe, "one_for_one", intensity=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        # b failed twice before it was ready, then came up; c started after it.
        assert probe.count("start", "b") == 3
        assert probe.log[-2:] == [("start", "c"), ("ready", "c")]
        sup.request_stop()


async def test_child_failing_before_ready_too_often_fails_the_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from notifactor.supervisors import SupervisorGaveUp

    probe = Probe(fail_before_ready={"b": math.inf})  # type: ignore[dict-item]
    sup = three(probe, "one_for_one", intensity=1)
    with pytest.raises(SupervisorGaveUp) as caught:
        await sup.run()
    assert caught.value.child_id == "b"
    # a was stopped again before the error reached the caller; c never started.
    assert probe.log[-1] == ("stopped", "a")
    assert probe.count("start", "c") == 0


async def test_child_returning_before_ready_counts_as_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from notifactor.supervisors import ChildSpec, SupervisorGaveUp

    async def forgetful(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        return

    sup = Supervisor("sup", [ChildSpec(id="x", start=forgetful)], intensity=0)
    with pytest.RaisesGroup(
        pytest.RaisesExc(SupervisorGaveUp, match="returned before task_status.started")
    ):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)


def test_duplicate_child_ids_are_refused() -> None:
    probe = Probe()
    with pytest.raises(ValueError, match="unique"):
        Supervisor("sup", [probe.spec("a"), probe.spec("a")])


async def test_request_stop_before_run_makes_run_return_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sup = three(probe, "one_for_one")
    sup.request_stop()
    await sup.run()
    assert probe.log == []
    # The stop request is used up: the next run starts normally.
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert probe.count("ready", "c") == 1
        with pytest.raises(RuntimeError, match="already running"):
            await sup.run()
        sup.request_stop()


def test_stop_signal_outside_a_supervised_child() -> None:
    from notifactor.supervisors import current_stop_signal

    with pytest.raises(RuntimeError, match="not running under a supervisor"):
        current_stop_signal()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"restart": "sometimes"}, "restart must be one of"),
        ({"shutdown": -1.0}, "shutdown must be >= 0"),
        ({"shutdown": "gentle"}, "shutdown must be seconds or 'brutal'"),
    ],
)
def test_child_spec_validation(kwargs: dict[str, object], reason: str) -> None:
    from notifactor.supervisors import ChildSpec

    async def start(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    with pytest.raises(ValueError, match=reason):
        ChildSpec(id="x", start=start, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_a_start_failure_in_the_middle_of_a_restart_still_restarts_the_rest(
    autojump_clock: trio.testing.MockClock, strategy: Strategy
) -> None:
    probe = Probe()
    sup = three(probe, strategy)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        probe.fail_before_ready["b"] = 1
        probe.crash("b")
        await probe.wait_for("ready", "c", 2)
        assert probe.count("ready", "b") == 2
        assert probe.count("start", "b") == 3  # first, failed restart, good restart
        assert [c.state for c in sup.statistics().children] == ["running"] * 3
        sup.request_stop()


async def test_crash_and_restart_log_lines_name_the_child_and_the_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonLineFormatter("test-instance"))
    logger = logging.getLogger("notifactor.supervisors")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        probe = Probe()
        sup = three(probe, "one_for_one")
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            probe.crash("b")
            await probe.wait_for("ready", "b", 2)
            sup.request_stop()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    crashed = [r for r in records if r["level"] == "error" and "crashed" in r["message"]]
    assert crashed, records
    assert crashed[0]["supervisor_id"] == "sup"
    assert crashed[0]["child_id"] == "b"
    assert "b crashed" in crashed[0]["reason"]
    assert crashed[0]["instance_id"] == "test-instance"
    # The restart that follows is logged with the same fields.
    restarted = [r for r in records if r is not crashed[0] and r.get("child_id") == "b"]
    assert restarted, records
    assert restarted[0]["supervisor_id"] == "sup"
