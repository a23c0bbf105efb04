"""Dynamic supervisors: pools of independent children added at run time.

One session actor per WebSocket, one consumer per stream partition: the set
of children is not known when the tree is built. Children are started and
stopped by id; each crash is handled on its own (one-for-one), with the
child's own backoff, and restarts of all members count towards the pool's
restart intensity. ``max_children`` bounds the pool so that a flood of
connections is refused (``PoolFull``) instead of exhausting memory.
"""

from __future__ import annotations

import logging
import math
import random as _random

import trio

from notifactor.actors.crash import CrashReason
from notifactor.actors.stop import cut_short_by_hurry
from notifactor.domain.backoff import Backoff, BackoffPolicy
from notifactor.supervisors.child import (
    Child,
    ChildExit,
    request_stop,
    resolve_shutdown,
    start_incarnation,
    stop_child,
    wait_stopped,
)
from notifactor.supervisors.child_spec import ChildSpec, Shutdown
from notifactor.supervisors.errors import (
    ChildStartFailed,
    DuplicateChild,
    PoolFull,
    SupervisorGaveUp,
    SupervisorNotRunning,
)
from notifactor.supervisors.lifecycle import SupervisorLifecycle
from notifactor.supervisors.statistics import NodeStatistics
from notifactor.supervisors.strategies import RestartType, should_restart
from notifactor.supervisors.supervisor import CLEANUP_SLACK_S

logger = logging.getLogger("notifactor.supervisors.dynamic")


class DynamicSupervisor(SupervisorLifecycle):
    """A bounded pool of children started and stopped by id.

    Args:
        id: the supervisor's id (its child id when nested).
        max_children: pool capacity; ``start_child`` beyond it raises ``PoolFull``.
        intensity: restarts (of all members together) tolerated within
            ``period_s`` before the pool gives up.
        period_s: the restart-intensity window.
        backoff: delay schedule before restarts (per child).
        shutdown_s: graceful stop budget of children whose spec has none.
        default_restart: restart type of children whose spec has none.
        random: source of backoff jitter.
    """

    def __init__(
        self,
        id: str,
        *,
        max_children: int = 10_000,
        intensity: int = 3,
        period_s: float = 5.0,
        backoff: BackoffPolicy | None = None,
        shutdown_s: float = 5.0,
        default_restart: RestartType = "transient",
        random: _random.Random | None = None,
    ) -> None:
        if max_children < 1:
            raise ValueError("max_children must be > 0")
        self.max_children = max_children
        super().__init__(id, intensity=intensity, period_s=period_s)
        self._policy = backoff if backoff is not None else BackoffPolicy()
        self._shutdown_s = shutdown_s
        self._default_restart: RestartType = default_restart
        self._random = random if random is not None else _random.Random()
        self._children: dict[str, Child] = {}

    def __contains__(self, child_id: object) -> bool:
        return child_id in self._children

    def __len__(self) -> int:
        return len(self._children)

    def child_ids(self) -> list[str]:
        """Ids of the current children, oldest first."""
        return list(self._children)

    def child_spec(
        self, *, restart: RestartType | None = None, shutdown: Shutdown = math.inf
    ) -> ChildSpec:
        """This pool as a child of a static supervisor."""
        return ChildSpec(
            id=self.id,
            start=self.run,
            restart=restart,
            shutdown=shutdown,
            kind="dynamic_supervisor",
            introspect=self.statistics,
        )

    def request_stop(self) -> None:
        """Stop gracefully: every child at once, then ``run`` returns.

        As for ``Supervisor.request_stop``, a nested pool's parent sees a
        normal exit.
        """
        (self._stop or self._own_stop).request()

    def statistics(self) -> NodeStatistics:
        """A snapshot of the pool."""
        return NodeStatistics(
            id=self.id,
            kind="dynamic_supervisor",
            state=self._state,
            strategy="one_for_one",
            max_children=self.max_children,
            children=tuple(child.statistics() for child in list(self._children.values())),
        )

    async def start_child(self, spec: ChildSpec) -> None:
        """Start a child and wait until it is ready.

        Raises:
            SupervisorNotRunning: the pool is not running (yet, or any more).
            DuplicateChild: a child with ``spec.id`` already exists.
            PoolFull: the pool already holds ``max_children`` children.
            ChildStartFailed: the child failed before it was ready; it is not
                kept and this does not count towards the restart intensity.
        """
        nursery = self._nursery
        if nursery is None or self._state != "running":
            raise SupervisorNotRunning(self.id)
        if spec.id in self._children:
            raise DuplicateChild(self.id, spec.id)
        if len(self._children) >= self.max_children:
            raise PoolFull(self.id, self.max_children)
        child = Child(
            spec=spec,
            restart=spec.restart or self._default_restart,
            shutdown=resolve_shutdown(spec.shutdown, self._shutdown_s),
            backoff=Backoff(policy=self._policy),
        )
        self._children[spec.id] = child  # reserve the slot before waiting
        ready = False
        try:
            crash = await start_incarnation(nursery, child, self._exits)
            ready = crash is None
        finally:
            if not ready and not child.held:  # a child the pool holds is stopped with it
                self._forget(child)
        if crash is not None:
            child.terminated()
            raise ChildStartFailed(self.id, spec.id, crash)
        child.state = "running"

    async def stop_child(self, child_id: str) -> bool:
        """Stop a child within its budget and forget it; ``False`` if unknown.

        The stop completes even if the caller is cancelled meanwhile.
        """
        child = self._children.get(child_id)
        if child is None:
            return False
        with trio.CancelScope(shield=True) as scope, cut_short_by_hurry(scope):
            scope.deadline = trio.current_time() + child.budget() + CLEANUP_SLACK_S
            await stop_child(child)
        if child.alive and child.scope is not None:
            child.scope.cancel()
        self._forget(child)
        child.terminated()
        return True

    async def _supervise(self) -> SupervisorGaveUp:
        while True:
            child_exit = await self._exits.get()
            child, crash = child_exit.child, child_exit.crash
            if self._children.get(child.id) is not child:
                continue
            child.state = "stopped"
            if crash is not None:
                self._log_crash(child.id, crash)
            if not should_restart(child.restart, crashed=crash is not None):
                self._forget(child)
                child.terminated()
                continue
            now = trio.current_time()
            self._intensity = self._intensity.record(now)
            if self._intensity.exceeded:
                logger.error(
                    "supervisor %s gives up: child %s exceeded %d restarts in %gs",
                    self.id,
                    child.id,
                    self._intensity.intensity,
                    self._intensity.period_s,
                    extra={"supervisor_id": self.id, "child_id": child.id},
                )
                reason = crash or CrashReason.without_exception(child.id, "exited normally", at=now)
                return SupervisorGaveUp(self.id, child.id, reason)
            delay, child.backoff = child.backoff.next(
                now=now, started_at=child.started_at, u=self._random.random()
            )
            child.state = "restarting"
            logger.info(
                "supervisor %s: restarting %s in %.3fs",
                self.id,
                child.id,
                delay,
                extra={"supervisor_id": self.id, "child_id": child.id, "delay_s": delay},
            )
            child.pending_restart = trio.CancelScope()
            assert self._nursery is not None
            self._nursery.start_soon(self._restart_later, child, delay)

    async def _restart_later(self, child: Child, delay: float) -> None:
        assert child.pending_restart is not None
        with child.pending_restart:
            await trio.sleep(delay)
            if child.stopping or self._nursery is None:
                return
            child.restarts += 1
            crash = await start_incarnation(self._nursery, child, self._exits)
            if crash is None:
                child.state = "running"
            else:
                self._exits.report(ChildExit(child, child.incarnation, crash))
        child.pending_restart = None

    async def _stop_all(self) -> None:
        """Stop every child concurrently, shielded, each within its budget."""
        children = list(self._children.values())
        now = trio.current_time()
        for child in children:
            request_stop(child)
        with trio.CancelScope(shield=True) as cleanup, cut_short_by_hurry(cleanup):
            cleanup.deadline = now + max((c.budget() for c in children), default=0.0)
            cleanup.deadline += CLEANUP_SLACK_S
            for child in sorted(children, key=lambda c: c.budget()):
                await wait_stopped(child, now + child.budget())
        for child in children:
            if child.alive and child.scope is not None:
                child.scope.cancel()
            self._forget(child)
            child.terminated()

    def _forget(self, child: Child) -> None:
        if self._children.get(child.id) is child:
            del self._children[child.id]
