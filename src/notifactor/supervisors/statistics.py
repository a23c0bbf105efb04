"""Snapshots of a running tree, for ``notifactor tree``, ``/health`` and metrics.

``statistics()`` on a supervisor returns a ``NodeStatistics`` for itself with
its children nested recursively. The values are frozen attrs instances, so a
snapshot can be handed to another task or serialized without locking.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal

import attrs

from notifactor.actors.crash import CrashReason
from notifactor.actors.mailbox import MailboxStatistics

NodeKind = Literal["supervisor", "dynamic_supervisor", "actor", "worker"]
NodeState = Literal["starting", "running", "restarting", "stopping", "stopped"]


@attrs.frozen(kw_only=True)
class NodeStatistics:
    """One node of the tree.

    Attributes:
        id: child id (unique among its siblings).
        kind: ``supervisor``, ``dynamic_supervisor``, ``actor`` or ``worker``.
        state: ``starting``, ``running``, ``restarting`` (waiting out its
            backoff), ``stopping`` or ``stopped``.
        strategy: restart strategy, for supervisors.
        restarts: how many times its parent restarted it.
        last_crash: the most recent crash, if any.
        mailbox: mailbox depth and peak, for actors.
        max_children: capacity, for dynamic supervisors.
        children: child nodes in start order.
        record: identifies the bookkeeping ``restarts`` is counted in (the
            parent's record of this child). A node created anew (by a
            restarted subtree, or as a new pool member) has a new record and
            its count starts over; metrics use this to stay monotonic.
    """

    id: str
    kind: NodeKind
    state: NodeState
    strategy: str | None = None
    restarts: int = 0
    last_crash: CrashReason | None = None
    mailbox: MailboxStatistics | None = None
    max_children: int | None = None
    children: tuple[NodeStatistics, ...] = ()
    record: int = 0

    def walk(self, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], NodeStatistics]]:
        """Every node with its path of ids from this one, depth first.

        Metrics use the path (joined with ``/``) as the child label.
        """
        here = (*path, self.id)
        yield here, self
        for child in self.children:
            yield from child.walk(here)


def not_running(node: NodeStatistics, path: tuple[str, ...] = ()) -> list[tuple[str, NodeState]]:
    """Paths (joined with ``/``) and states of the nodes that are not ``running``.

    Members of a dynamic supervisor's pool (sessions, partition consumers)
    start, stop and restart as part of normal work, so they are not judged
    one by one: their pool is. A pool whose members keep crashing gives up
    and shows as not running itself.
    """
    here = (*path, node.id)
    found: list[tuple[str, NodeState]] = []
    if node.state != "running":
        found.append(("/".join(here), node.state))
    if node.kind != "dynamic_supervisor":
        for child in node.children:
            found += not_running(child, here)
    return found


def render_tree(node: NodeStatistics) -> str:
    """Render a snapshot as an indented text tree, one node per line."""
    lines: list[str] = []
    _render(node, "", "", lines)
    return "\n".join(lines)


def _describe(node: NodeStatistics) -> str:
    parts = [node.id, f"[{node.kind}]", node.state]
    if node.strategy is not None:
        parts.append(node.strategy)
    if node.max_children is not None:
        parts.append(f"children={len(node.children)}/{node.max_children}")
    parts.append(f"restarts={node.restarts}")
    if node.mailbox is not None:
        parts.append(
            f"mailbox={node.mailbox.depth}/{node.mailbox.capacity} peak={node.mailbox.peak}"
        )
    if node.last_crash is not None:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(node.last_crash.wall_time))
        parts.append(f"last_crash={node.last_crash.summary()!r} at {when}")
    return " ".join(parts)


def _render(node: NodeStatistics, prefix: str, child_prefix: str, out: list[str]) -> None:
    out.append(prefix + _describe(node))
    for i, child in enumerate(node.children):
        last = i == len(node.children) - 1
        _render(
            child,
            child_prefix + ("└── " if last else "├── "),
            child_prefix + ("    " if last else "│   "),
            out,
        )


def to_jsonable(node: NodeStatistics) -> dict[str, Any]:
    """A snapshot as plain dicts, lists, strings and numbers (for JSON)."""
    crash = node.last_crash
    return {
        "id": node.id,
        "kind": node.kind,
        "state": node.state,
        "strategy": node.strategy,
        "restarts": node.restarts,
        "max_children": node.max_children,
        "mailbox": None if node.mailbox is None else attrs.asdict(node.mailbox),
        "last_crash": None
        if crash is None
        else {
            "child_id": crash.child_id,
            "type": crash.exc_type,
            "message": crash.message,
            "traceback": crash.traceback,
            "wall_time": crash.wall_time,
        },
        "children": [to_jsonable(child) for child in node.children],
    }
