"""What ``/health`` calls unhealthy in a supervision tree: structure, not pool churn."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio

from notifactor.bootstrap import SupervisionUnhealthy, check_supervision
from notifactor.supervisors.statistics import NodeState, NodeStatistics, not_running


def node(
    node_id: str,
    state: NodeState = "running",
    *children: NodeStatistics,
    kind: str = "supervisor",
) -> NodeStatistics:
    return NodeStatistics(id=node_id, kind=kind, state=state, children=children)  # type: ignore[arg-type]


def tree(*, http: NodeState = "running", pool: NodeState = "running") -> NodeStatistics:
    sessions = node(
        "sessions",
        pool,
        node("s-1", "starting", kind="actor"),
        node("s-2", "stopping", kind="actor"),
        node("s-3", "restarting", kind="actor"),
        node("s-4", kind="actor"),
        kind="dynamic_supervisor",
    )
    gateway = node("gateway", "running", node("http", http, kind="worker"), sessions)
    return node("root", "running", node("services", "running", gateway))


def test_members_of_a_pool_coming_and_going_are_healthy() -> None:
    assert not_running(tree()) == []


def test_a_static_child_not_running_is_reported_with_its_path() -> None:
    assert not_running(tree(http="restarting")) == [("root/services/gateway/http", "restarting")]


def test_a_pool_not_running_is_reported_but_not_its_members() -> None:
    assert not_running(tree(pool="stopping")) == [("root/services/gateway/sessions", "stopping")]


async def test_check_supervision_follows_the_same_rule() -> None:
    healthy = SimpleNamespace(root=SimpleNamespace(statistics=tree))
    await check_supervision(healthy)  # type: ignore[arg-type]
    broken = SimpleNamespace(root=SimpleNamespace(statistics=lambda: tree(http="restarting")))
    with pytest.raises(SupervisionUnhealthy, match="root/services/gateway/http is restarting"):
        await check_supervision(broken)  # type: ignore[arg-type]
    with pytest.raises(SupervisionUnhealthy, match="tree not built"):
        await check_supervision(SimpleNamespace(root=None))  # type: ignore[arg-type]
    await trio.lowlevel.checkpoint()
