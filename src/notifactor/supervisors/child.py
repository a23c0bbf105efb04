"""The running side of a child: one record per child, one task per incarnation.

Shared by ``Supervisor`` and ``DynamicSupervisor``. Each incarnation runs in
its own cancel scope. Until the child has been handed over to its
supervisor's nursery the scope is unshielded, so cancelling whoever is
starting it also aborts the start. Once handed over, the scope is shielded:
cancelling the supervisor's task must not tear children down at once and out
of order; the supervisor stops them itself, in reverse order, each within its
shutdown budget, and only then cancels what is left.

A child that reports ready after its starter was cancelled (a stop request
landed during its start) is not handed over (Trio's ``started()`` then leaves
it where it is): it stays unshielded, so the cancellation that aborted the
start ends it too, and the starter returns.
"""

from __future__ import annotations

import itertools
import logging
import math

import attrs
import trio

from notifactor.actors.crash import CrashReason
from notifactor.actors.latch import Latch
from notifactor.actors.stop import StopSignal, set_stop_signal
from notifactor.domain.backoff import Backoff
from notifactor.supervisors.child_spec import ChildSpec, Shutdown
from notifactor.supervisors.statistics import NodeState, NodeStatistics
from notifactor.supervisors.strategies import RestartType

logger = logging.getLogger("notifactor.supervisors.child")

_records = itertools.count(1)


@attrs.define(eq=False)
class Child:
    """Mutable bookkeeping for one child, kept across its incarnations."""

    spec: ChildSpec
    restart: RestartType
    shutdown: float | None  # None: brutal
    backoff: Backoff
    state: NodeState = "stopped"
    restarts: int = 0
    last_crash: CrashReason | None = None
    started_at: float = 0.0
    incarnation: int = 0
    stopping: bool = False
    held: bool = False  # the current incarnation was handed over to the supervisor
    scope: trio.CancelScope | None = None
    stop_signal: StopSignal = attrs.Factory(StopSignal)
    done: Latch = attrs.Factory(Latch)
    pending_restart: trio.CancelScope | None = None
    record: int = attrs.Factory(lambda: next(_records))  # unique per record, for metrics

    @property
    def id(self) -> str:
        """The child id from its spec."""
        return self.spec.id

    @property
    def alive(self) -> bool:
        """Whether an incarnation task exists (starting, running or stopping)."""
        return self.scope is not None and not self.done.is_set()

    def budget(self) -> float:
        """Seconds a graceful stop may take (0 for brutal)."""
        return 0.0 if self.shutdown is None else self.shutdown

    def terminated(self) -> None:
        """The child stopped for good: let its spec release its address."""
        self.state = "stopped"
        if self.spec.on_terminated is not None:
            self.spec.on_terminated()

    def statistics(self) -> NodeStatistics:
        """The spec's own snapshot with this record's state and restarts."""
        own = self.spec.introspect() if self.spec.introspect is not None else None
        if own is None:
            own = NodeStatistics(id=self.id, kind=self.spec.kind, state=self.state)
        return attrs.evolve(
            own,
            id=self.id,
            state=self.state,
            restarts=self.restarts,
            last_crash=self.last_crash,
            record=self.record,
        )


@attrs.frozen
class ChildExit:
    """An incarnation ended on its own: returned (``crash is None``) or crashed."""

    child: Child
    incarnation: int
    crash: CrashReason | None

    @property
    def current(self) -> bool:
        """Not stale: the child has not been restarted or asked to stop since."""
        return self.incarnation == self.child.incarnation and not self.child.stopping


class ExitQueue:
    """Exits waiting for the supervisor, at most one per child.

    Bounded by the number of children: a child's newer exit replaces an older
    one still queued (the older one is stale by then).
    """

    def __init__(self) -> None:
        self._exits: dict[Child, ChildExit] = {}
        self._wakeup = trio.Event()

    def report(self, child_exit: ChildExit) -> None:
        """Queue an exit (never blocks)."""
        self._exits[child_exit.child] = child_exit
        self._wakeup.set()

    async def get(self) -> ChildExit:
        """Wait for the oldest queued exit that is not stale."""
        while True:
            while not self._exits:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            child = next(iter(self._exits))
            child_exit = self._exits.pop(child)
            if child_exit.current:
                return child_exit

    def pending(self) -> list[ChildExit]:
        """The queued exits that are not stale, oldest first; they stay queued."""
        return [child_exit for child_exit in self._exits.values() if child_exit.current]

    def of(self, child: Child) -> ChildExit | None:
        """The exit of ``child`` still queued and not stale, if any; it stays queued."""
        child_exit = self._exits.get(child)
        return child_exit if child_exit is not None and child_exit.current else None

    def take(self, child: Child) -> None:
        """Remove the queued exit of ``child``, if any."""
        self._exits.pop(child, None)


class _Readiness:
    """The ``task_status`` a child sees: records readiness, then shields it.

    It holds the starter's ``task_status`` only until it is used: Trio's
    keeps the starter's (finished) task and nursery reachable, and an
    incarnation may run for as long as the process (one per WebSocket).
    """

    __slots__ = ("_child", "_parent", "_scope", "_task", "ready")

    def __init__(
        self,
        child: Child,
        scope: trio.CancelScope,
        parent: trio.TaskStatus[CrashReason | None],
        task: trio.lowlevel.Task,
    ):
        self._child = child
        self._scope = scope
        self._parent: trio.TaskStatus[CrashReason | None] | None = parent
        self._task = task
        self.ready = False

    def started(self, value: object = None) -> None:
        if value is not None:
            raise TypeError("supervised children call task_status.started() without a value")
        if self.ready:
            raise RuntimeError("task_status.started() called twice")
        self.ready = True
        parent, self._parent = self._parent, None
        assert parent is not None
        starting_in = self._task.parent_nursery
        parent.started(None)
        # Trio moves the task into the supervisor's nursery unless the start
        # was cancelled meanwhile; only a child the supervisor holds is shielded.
        if self._task.parent_nursery is not starting_in:
            self._child.held = True
            self._child.state = "running"
            self._scope.shield = True

    def failed(self, crash: CrashReason | None) -> None:
        """The incarnation ended before it was ready: tell the starter why."""
        parent, self._parent = self._parent, None
        assert parent is not None
        parent.started(crash)


async def run_incarnation(
    child: Child,
    exits: ExitQueue,
    *,
    task_status: trio.TaskStatus[CrashReason | None],
) -> None:
    """Run one incarnation of ``child``; the starter gets ``None`` once it is ready.

    A failure before readiness is handed to the starter (``started(reason)``)
    instead of being raised, so it never tears down the supervisor's nursery;
    a failure or return after readiness goes to ``exits``. Cancellation is
    never caught here: it propagates after the bookkeeping.
    """
    child.incarnation += 1
    incarnation = child.incarnation
    if child.stopping:
        task_status.started(
            CrashReason.without_exception(
                child.id, "stopped before it started", at=trio.current_time()
            )
        )
        return
    scope = trio.CancelScope()
    readiness = _Readiness(child, scope, task_status, trio.lowlevel.current_task())
    del task_status  # held by ``readiness`` until used (see ``_Readiness``)
    child.scope, child.stop_signal, child.done = scope, StopSignal(), Latch()
    child.held = False
    child.state = "starting"
    child.started_at = trio.current_time()
    set_stop_signal(child.stop_signal)
    crash: CrashReason | None = None
    try:
        with scope:
            try:
                await child.spec.start(task_status=readiness)
            except* Exception as group:
                crash = CrashReason.from_exception(child.id, group, at=trio.current_time())
        if crash is None and not readiness.ready:
            what = "killed before it was ready" if scope.cancelled_caught else ""
            crash = CrashReason.without_exception(
                child.id, what or "returned before task_status.started()", at=trio.current_time()
            )
    finally:
        child.done.set()
    if crash is not None:
        child.last_crash = crash
    if not readiness.ready:
        readiness.failed(crash)
        return
    if not child.held:
        return  # its start was aborted: the starter is being cancelled, not waiting
    if child.stopping:
        if crash is not None:
            logger.warning(
                "child %s crashed while stopping: %s",
                child.id,
                crash.summary(),
                extra={"child_id": child.id},
            )
        return
    exits.report(ChildExit(child, incarnation, crash))


async def start_incarnation(
    nursery: trio.Nursery, child: Child, exits: ExitQueue
) -> CrashReason | None:
    """Start an incarnation of ``child`` in ``nursery``: ``None`` once the nursery holds it.

    Returns why it failed if it ended before it was ready. Raises
    ``trio.Cancelled`` if the caller was cancelled during the start; the
    incarnation has ended by then (it was never shielded).
    """
    crash: CrashReason | None = await nursery.start(run_incarnation, child, exits)
    if crash is None and not child.held:
        # Ready, but too late: the cancellation that aborted the start ended it.
        await trio.lowlevel.checkpoint()
        return CrashReason.without_exception(
            child.id, "its start was aborted", at=trio.current_time()
        )
    return crash


def request_stop(child: Child) -> None:
    """First step of stopping: ask nicely, or cancel at once for ``brutal``."""
    child.stopping = True
    child.state = "stopping"
    if child.pending_restart is not None:
        child.pending_restart.cancel()
    if child.scope is None:
        return
    if child.shutdown is None:
        child.scope.cancel()
    else:
        child.stop_signal.request()


async def wait_stopped(child: Child, deadline: float) -> None:
    """Second step: wait until ``deadline``, then cancel, then wait for the exit."""
    if child.scope is None:
        return
    with trio.move_on_at(deadline):
        await child.done.wait()
    if not child.done.is_set():
        logger.warning(
            "child %s did not stop within %.3gs; cancelling it",
            child.id,
            child.budget(),
            extra={"child_id": child.id},
        )
        child.scope.cancel()
        await child.done.wait()
    child.state = "stopped"


async def stop_child(child: Child) -> None:
    """Stop one child within its budget (graceful, then cancelled)."""
    request_stop(child)
    deadline = trio.current_time() + child.budget() if child.budget() < math.inf else math.inf
    await wait_stopped(child, deadline)


def resolve_shutdown(shutdown: Shutdown | None, default_s: float) -> float | None:
    """A spec's budget in seconds (``None`` for brutal), defaulting to the supervisor's."""
    if shutdown is None:
        return default_s
    if shutdown == "brutal":
        return None
    return float(shutdown)
