"""Child specifications: what a supervisor needs to know to run a child.

A child is anything with a start function: an async callable that accepts
``task_status``, calls ``task_status.started()`` once it is ready to serve,
and then runs until it is stopped (or returns, or raises). Actors, nested
supervisors, listeners and child processes all fit that shape.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar

import attrs
import trio

from notifactor.actors.actor import Actor, run_actor
from notifactor.actors.ref import ActorRef
from notifactor.supervisors.statistics import NodeKind, NodeStatistics
from notifactor.supervisors.strategies import RESTART_TYPES, RestartType

M = TypeVar("M")

Shutdown = float | Literal["brutal"]
"""Seconds a child gets to stop after a graceful stop request before it is
cancelled, or ``"brutal"`` to cancel it at once. ``math.inf`` waits as long
as it takes (for nested supervisors, which bound their own children)."""


class StartFunction(Protocol):
    """``async def start(*, task_status=trio.TASK_STATUS_IGNORED) -> None``."""

    def __call__(self, *, task_status: trio.TaskStatus[None]) -> Awaitable[object]: ...


def _check_restart(_instance: Any, _attribute: Any, value: Any) -> None:
    if value is not None and value not in RESTART_TYPES:
        raise ValueError(f"restart must be one of {', '.join(RESTART_TYPES)} (got {value!r})")


def _check_shutdown(_instance: Any, _attribute: Any, value: Any) -> None:
    if value is None or value == "brutal":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"shutdown must be seconds or 'brutal' (got {value!r})")
    if value < 0:
        raise ValueError(f"shutdown must be >= 0 (got {value!r})")


@attrs.frozen(kw_only=True)
class ChildSpec:
    """How to start, restart and stop one child.

    Attributes:
        id: unique among the supervisor's children; used in logs and the tree.
        start: the start function (see ``StartFunction``).
        restart: ``permanent``, ``transient`` or ``temporary``; ``None`` takes
            the supervisor's default (``permanent`` for a ``Supervisor``, the
            configured ``child_restart`` for a ``DynamicSupervisor``).
        shutdown: graceful budget in seconds, or ``"brutal"``; ``None`` takes
            the supervisor's ``shutdown_s``.
        kind: how the node shows in the tree.
        introspect: returns the child's own snapshot (mailbox, nested
            children); the supervisor overlays state and restart counts.
        on_terminated: called once the child has stopped for good and will
            not be restarted (an actor spec closes its address here).
    """

    id: str
    start: StartFunction
    restart: RestartType | None = attrs.field(default=None, validator=_check_restart)
    shutdown: Shutdown | None = attrs.field(default=None, validator=_check_shutdown)
    kind: NodeKind = "worker"
    introspect: Callable[[], NodeStatistics] | None = attrs.field(default=None, eq=False)
    on_terminated: Callable[[], None] | None = attrs.field(default=None, eq=False)


def actor_spec(
    ref: ActorRef[M],
    factory: Callable[[], Actor[M]],
    *,
    restart: RestartType | None = None,
    shutdown: Shutdown | None = None,
) -> ChildSpec:
    """The child spec of an actor: its id is the ref's name.

    Each (re)start builds a fresh actor with ``factory`` and runs it on the
    ref's mailbox, so the address survives restarts. When the supervisor
    drops the child for good, the ref is closed.
    """

    def introspect() -> NodeStatistics:
        return NodeStatistics(id=ref.name, kind="actor", state="running", mailbox=ref.statistics())

    start: StartFunction = functools.partial(run_actor, ref, factory)
    return ChildSpec(
        id=ref.name,
        start=start,
        restart=restart,
        shutdown=shutdown,
        kind="actor",
        introspect=introspect,
        on_terminated=ref.close,
    )
