"""Static supervisors: a fixed, ordered list of children, OTP style.

Children start in order, each only once the previous one reported ready, and
stop in reverse order, so a child can rely on its elder siblings. When a
child exits, its restart type decides whether it is restarted, the strategy
decides which siblings restart with it, the restart intensity decides whether
restarting is still reasonable, and the backoff decides when. When restarting
is not reasonable any more the supervisor stops everything and raises
``SupervisorGaveUp`` to its parent.
"""

from __future__ import annotations

import logging
import math
import random as _random
from collections.abc import Sequence

import attrs
import trio

from notifactor.actors.crash import CrashReason
from notifactor.actors.stop import cut_short_by_hurry
from notifactor.domain.backoff import Backoff, BackoffPolicy
from notifactor.supervisors.child import (
    Child,
    ChildExit,
    resolve_shutdown,
    start_incarnation,
    stop_child,
)
from notifactor.supervisors.child_spec import ChildSpec, Shutdown
from notifactor.supervisors.errors import SupervisorGaveUp
from notifactor.supervisors.lifecycle import SupervisorLifecycle
from notifactor.supervisors.statistics import NodeStatistics
from notifactor.supervisors.strategies import (
    RestartType,
    Strategy,
    affected_indices,
    parse_strategy,
    should_restart,
)

logger = logging.getLogger("notifactor.supervisors.supervisor")

CLEANUP_SLACK_S = 1.0
"""Extra time the shielded cleanup allows beyond the sum of the budgets."""


class Supervisor(SupervisorLifecycle):
    """Runs ``children`` and restarts them per ``strategy``.

    Args:
        id: the supervisor's id (its child id when nested).
        children: child specs, in start order; ids must be unique.
        strategy: ``one_for_one``, ``one_for_all`` or ``rest_for_one``.
        intensity: restarts tolerated within ``period_s`` before giving up.
        period_s: the restart-intensity window.
        backoff: delay schedule before restarts (per child).
        shutdown_s: graceful stop budget of children whose spec has none.
        random: source of backoff jitter (seed it for reproducible tests).
    """

    def __init__(
        self,
        id: str,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = "one_for_one",
        intensity: int = 3,
        period_s: float = 5.0,
        backoff: BackoffPolicy | None = None,
        shutdown_s: float = 5.0,
        random: _random.Random | None = None,
    ) -> None:
        ids = [spec.id for spec in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"supervisor {id!r}: child ids must be unique (got {ids})")
        self.strategy = parse_strategy(strategy)
        super().__init__(id, intensity=intensity, period_s=period_s)
        policy = backoff if backoff is not None else BackoffPolicy()
        self._random = random if random is not None else _random.Random()
        self._children = [
            Child(
                spec=spec,
                restart=spec.restart or "permanent",
                shutdown=resolve_shutdown(spec.shutdown, shutdown_s),
                backoff=Backoff(policy=policy),
            )
            for spec in children
        ]

    def child_spec(
        self, *, restart: RestartType | None = None, shutdown: Shutdown = math.inf
    ) -> ChildSpec:
        """This supervisor as a child of another one (nested trees).

        The default shutdown waits for the subtree to stop on its own: it
        bounds itself with its children's budgets.
        """
        return ChildSpec(
            id=self.id,
            start=self.run,
            restart=restart,
            shutdown=shutdown,
            kind="supervisor",
            introspect=self.statistics,
        )

    def request_stop(self) -> None:
        """Stop gracefully: children in reverse order, then ``run`` returns.

        Meant for the root (e.g. on SIGTERM); may be called before ``run``.
        On a nested supervisor it is a normal exit, which its parent handles
        per the restart type (a ``permanent`` subtree is started again).
        """
        (self._stop or self._own_stop).request()

    def statistics(self) -> NodeStatistics:
        """A snapshot of this subtree."""
        return NodeStatistics(
            id=self.id,
            kind="supervisor",
            state=self._state,
            strategy=self.strategy,
            children=tuple(child.statistics() for child in self._children),
        )

    def _reset_for_run(self) -> None:
        for child in self._children:
            child.backoff = attrs.evolve(child.backoff, attempt=0)

    async def _start_all(self) -> SupervisorGaveUp | None:
        for index, child in enumerate(self._children):
            crash = await self._start(child)
            if crash is not None:
                gave_up = await self._on_exit(ChildExit(child, child.incarnation, crash), index)
                if gave_up is not None:
                    return gave_up
        return None

    async def _supervise(self) -> SupervisorGaveUp:
        while True:
            child_exit = self._first_to_handle(await self._exits.get())
            gave_up = await self._on_exit(child_exit, self._children.index(child_exit.child))
            if gave_up is not None:
                return gave_up

    def _first_to_handle(self, child_exit: ChildExit) -> ChildExit:
        """Of the exits that came together, the one whose restart round covers the others.

        With a strategy that restarts siblings, the eldest failed child's
        round restarts the younger ones that failed with it (see
        ``_restart``), so its exit is handled first and theirs go stale.
        """
        if self.strategy == "one_for_one" or not _comes_back(child_exit):
            return child_exit
        together = [child_exit, *(e for e in self._exits.pending() if _comes_back(e))]
        eldest = min(together, key=lambda e: self._children.index(e.child))
        if eldest is not child_exit:
            self._exits.report(child_exit)  # restarted in the eldest's round
            self._exits.take(eldest.child)
        return eldest

    async def _start(self, child: Child) -> CrashReason | None:
        await trio.lowlevel.checkpoint_if_cancelled()  # never (re)start while cancelled
        assert self._nursery is not None
        child.stopping = False
        crash = await start_incarnation(self._nursery, child, self._exits)
        if crash is None:
            child.state = "running"
        return crash

    async def _on_exit(self, child_exit: ChildExit, index: int) -> SupervisorGaveUp | None:
        """Handle an exit; restart per strategy; return the error if giving up."""
        child, crash = child_exit.child, child_exit.crash
        while True:
            child.state = "stopped"
            if crash is not None:
                self._log_crash(child.id, crash)
            if not should_restart(child.restart, crashed=crash is not None):
                logger.info(
                    "supervisor %s: child %s (%s) exited and is not restarted",
                    self.id,
                    child.id,
                    child.restart,
                    extra={"supervisor_id": self.id, "child_id": child.id},
                )
                child.terminated()
                return None
            reason = crash or CrashReason.without_exception(
                child.id, "exited normally", at=trio.current_time()
            )
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
                return SupervisorGaveUp(self.id, child.id, reason)
            failed = await self._restart(index, now)
            if failed is None:
                return None
            index, crash = failed
            child = self._children[index]

    async def _restart(self, index: int, now: float) -> tuple[int, CrashReason] | None:
        """Restart the children the strategy names; report the first start failure."""
        crashed = self._children[index]
        affected = [self._children[i] for i in affected_indices(self.strategy, len(self), index)]
        # Restart what runs now, what an interrupted earlier round left pending,
        # and what exited together with the crashed child (its exit goes stale).
        exited_too = [c for c in affected if c is not crashed and self._exited_too(c)]
        to_restart = [
            c
            for c in affected
            if c is crashed
            or c in exited_too
            or c.state == "restarting"
            or (c.alive and not c.stopping)
        ]
        for sibling in reversed(to_restart):
            if sibling is not crashed:
                await stop_child(sibling)
                if sibling.restart == "temporary":
                    sibling.terminated()
        to_restart = [c for c in to_restart if c is crashed or c.restart != "temporary"]
        delay, crashed.backoff = crashed.backoff.next(
            now=now, started_at=crashed.started_at, u=self._random.random()
        )
        for child in to_restart:
            child.state = "restarting"
        logger.info(
            "supervisor %s: restarting %s in %.3fs",
            self.id,
            ", ".join(c.id for c in to_restart),
            delay,
            extra={"supervisor_id": self.id, "child_id": crashed.id, "delay_s": delay},
        )
        await trio.sleep(delay)
        for child in to_restart:
            child.restarts += 1
            crash = await self._start(child)
            if crash is not None:
                return self._children.index(child), crash
        return None

    def _exited_too(self, child: Child) -> bool:
        """Whether ``child``'s exit is still queued and its restart type brings it back.

        Its crash is logged here: that exit goes stale and gets no round of its own.
        """
        child_exit = self._exits.of(child)
        if child_exit is None or not _comes_back(child_exit):
            return False
        if child_exit.crash is not None:
            self._log_crash(child.id, child_exit.crash)
        return True

    async def _stop_all(self) -> None:
        """Stop every child in reverse start order, shielded, within the budgets."""
        alive = [child for child in self._children if child.alive]
        budget = sum(child.budget() for child in alive) + CLEANUP_SLACK_S
        with trio.CancelScope(shield=True) as cleanup, cut_short_by_hurry(cleanup):
            cleanup.deadline = trio.current_time() + budget
            for child in reversed(alive):
                await stop_child(child)
        for child in self._children:
            child.stopping = True
            child.state = "stopped"
            if child.alive and child.scope is not None:
                child.scope.cancel()  # past the total budget: no more waiting

    def __len__(self) -> int:
        return len(self._children)


def _comes_back(child_exit: ChildExit) -> bool:
    """Whether the exited child's restart type restarts it after this exit."""
    return should_restart(child_exit.child.restart, crashed=child_exit.crash is not None)
