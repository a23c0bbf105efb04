"""``actor_restarts_total`` never decreases, and pool members do not make
``supervision_node_up`` read 0 while the pool is healthy."""

from __future__ import annotations

import math

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from notifactor.domain.backoff import BackoffPolicy
from notifactor.observability.supervision_metrics import SupervisionCollector
from notifactor.supervisors import ChildSpec, DynamicSupervisor, NodeStatistics, Supervisor
from notifactor.supervisors.statistics import NodeState
from tests.supervisors.probe import Probe

NO_BACKOFF = BackoffPolicy(min_s=0.0, max_s=0.0, jitter=0.0)


def restarts(registry: CollectorRegistry, child: str) -> float | None:
    return registry.get_sample_value("actor_restarts_total", {"child": child})


def up(registry: CollectorRegistry, child: str) -> float | None:
    return registry.get_sample_value("supervision_node_up", {"child": child})


async def test_restarts_of_a_subtree_built_anew_on_each_start_are_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Like ``services``: each incarnation builds a new supervisor, whose counts start at 0."""
    probe = Probe()
    current: list[Supervisor] = []

    async def services(*, task_status: trio.TaskStatus[None]) -> None:
        inner = Supervisor("services", [probe.spec("worker")], intensity=5, backoff=NO_BACKOFF)
        current[:] = [inner]
        await inner.run(task_status=task_status)

    def services_statistics() -> NodeStatistics:
        return current[0].statistics()

    root = Supervisor(
        "root",
        [
            probe.spec("redis"),
            ChildSpec(
                id="services", start=services, kind="supervisor", introspect=services_statistics
            ),
        ],
        strategy="rest_for_one",
        backoff=NO_BACKOFF,
    )
    registry = CollectorRegistry()
    registry.register(SupervisionCollector(root.statistics))
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        for n in (2, 3):
            probe.crash("worker")
            await probe.wait_for("ready", "worker", n)
        assert restarts(registry, "root/services/worker") == 2
        probe.crash("redis")  # rest_for_one: services restarts with a new inner supervisor
        await probe.wait_for("ready", "worker", 4)
        assert current[0].statistics().children[0].restarts == 0
        assert restarts(registry, "root/services/worker") == 2
        probe.crash("worker")
        await probe.wait_for("ready", "worker", 5)
        assert restarts(registry, "root/services/worker") == 3
        assert restarts(registry, "root/services") == 1
        root.request_stop()


async def test_restarts_of_pool_members_that_left_are_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    pool = DynamicSupervisor("sessions", intensity=10, backoff=NO_BACKOFF)
    root = Supervisor("root", [pool.child_spec()])
    registry = CollectorRegistry()
    registry.register(SupervisionCollector(root.statistics))
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await pool.start_child(probe.spec("s1", restart="transient"))
        await pool.start_child(probe.spec("s2", restart="transient"))
        for n in (2, 3):
            probe.crash("s1")
            await probe.wait_for("ready", "s1", n)
        probe.crash("s2")
        await probe.wait_for("ready", "s2", 2)
        assert restarts(registry, "root/sessions/*") == 3
        assert await pool.stop_child("s1")  # the client went away
        assert restarts(registry, "root/sessions/*") == 3
        await pool.start_child(probe.spec("s1", restart="transient"))  # same id, new member
        probe.crash("s1")
        await probe.wait_for("ready", "s1", 5)
        assert restarts(registry, "root/sessions/*") == 4
        root.request_stop()


def _tree(sessions: list[tuple[NodeState, int]]) -> NodeStatistics:
    pool = NodeStatistics(
        id="sessions",
        kind="dynamic_supervisor",
        state="running",
        children=tuple(
            NodeStatistics(id=f"s{i}", kind="actor", state=state, restarts=count)
            for i, (state, count) in enumerate(sessions)
        ),
    )
    return NodeStatistics(id="root", kind="supervisor", state="running", children=(pool,))


def test_pool_members_starting_or_stopping_do_not_mark_anything_down() -> None:
    snapshot = {"tree": _tree([("running", 0), ("starting", 0), ("stopping", 0)])}
    registry = CollectorRegistry()
    registry.register(SupervisionCollector(lambda: snapshot["tree"]))
    assert up(registry, "root/sessions") == 1
    assert up(registry, "root/sessions/*") is None  # judged through the pool, as /health does
    assert restarts(registry, "root/sessions/*") == 0  # the members' series are still there
    snapshot["tree"] = NodeStatistics(
        id="root",
        kind="supervisor",
        state="running",
        children=(NodeStatistics(id="sessions", kind="dynamic_supervisor", state="restarting"),),
    )
    assert up(registry, "root/sessions") == 0


@st.composite
def _histories(draw: st.DrawFn) -> list[tuple[str, int]]:
    """Events on a pool: ``add``, ``restart`` / ``remove`` of a member, ``renew`` (the
    pool restarted: same members, new records, counts at 0)."""
    events: list[tuple[str, int]] = []
    members = 0
    for _ in range(draw(st.integers(min_value=1, max_value=40))):
        kind = draw(st.sampled_from(["add", "restart", "remove", "renew"]))
        if kind != "add" and members == 0:
            kind = "add"
        index = draw(st.integers(min_value=0, max_value=max(members - 1, 0)))
        members += {"add": 1, "remove": -1}.get(kind, 0)
        events.append((kind, index))
    return events


@settings(max_examples=150, deadline=None)
@given(history=_histories(), scrape_every=st.integers(min_value=1, max_value=4))
def test_restart_totals_never_decrease_and_count_every_restart_seen(
    history: list[tuple[str, int]], scrape_every: int
) -> None:
    members: list[list[int]] = []  # [id, record, restarts]; a member keeps its id
    serials = iter(range(1, 10_000))
    registry = CollectorRegistry()
    registry.register(SupervisionCollector(lambda: _pool_tree(members)))
    exported = 0.0
    happened = 0
    for step, (kind, index) in enumerate(history, start=1):
        if kind == "add":
            members.append([next(serials), next(serials), 0])
        elif kind == "restart":
            members[index][2] += 1
            happened += 1
        elif kind == "remove":
            del members[index]
        else:
            members[:] = [[member_id, next(serials), 0] for member_id, _, _ in members]
        if step % scrape_every == 0:
            now = restarts(registry, "root/pool/*")
            if now is None:  # no member: no folded series
                assert not members
                continue
            assert now >= exported
            exported = now
            if scrape_every == 1:
                assert math.isclose(now, happened)


def _pool_tree(members: list[list[int]]) -> NodeStatistics:
    children = tuple(
        NodeStatistics(
            id=f"m{member_id}", kind="worker", state="running", restarts=count, record=record
        )
        for member_id, record, count in members
    )
    pool = NodeStatistics(id="pool", kind="dynamic_supervisor", state="running", children=children)
    return NodeStatistics(id="root", kind="supervisor", state="running", children=(pool,))
