"""The run lifecycle every supervisor shares, static or dynamic.

A supervisor runs its children in a nursery of its own, under a cancel scope
its stop signal (the parent's, or its own when it is the root) cancels; it
then stops the children in reverse order within their budgets, and only
then reports a give-up to its parent. The subclasses say how children start
(``_start_all``) and how exits are handled (``_supervise``, ``_stop_all``).
"""

from __future__ import annotations

import logging

import trio

from notifactor.actors.crash import CrashReason
from notifactor.actors.stop import StopSignal, optional_stop_signal
from notifactor.domain.restart_intensity import RestartIntensity
from notifactor.supervisors.child import ExitQueue
from notifactor.supervisors.errors import SupervisorGaveUp
from notifactor.supervisors.statistics import NodeState


class SupervisorLifecycle:
    """Start, supervise and stop: the part of ``run`` both supervisor kinds share."""

    def __init__(self, id: str, *, intensity: int, period_s: float) -> None:
        self.id = id
        self._intensity_rule = RestartIntensity(intensity=intensity, period_s=period_s)
        self._intensity = self._intensity_rule
        self._state: NodeState = "stopped"
        self._stop: StopSignal | None = None
        self._own_stop = StopSignal()
        self._nursery: trio.Nursery | None = None
        self._exits = ExitQueue()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children, supervise them until stopped, stop them.

        Returns after a graceful stop (``request_stop`` or the parent's stop
        request). Cancelling the calling task stops the children the same
        way (shielded, within their budgets) before the cancellation goes on.

        Raises:
            SupervisorGaveUp: restart intensity exceeded; every child has
                been stopped already.
        """
        if self._nursery is not None:
            raise RuntimeError(f"supervisor {self.id!r} is already running")
        self._stop = optional_stop_signal() or self._own_stop
        self._intensity = self._intensity_rule  # a new incarnation starts with a clean slate
        self._reset_for_run()
        self._exits = ExitQueue()
        gave_up: SupervisorGaveUp | None = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._state = "starting"
                stop_scope = trio.CancelScope()
                self._stop.register(stop_scope)
                try:
                    with stop_scope:
                        gave_up = await self._start_all()
                        if gave_up is None:
                            self._state = "running"
                            task_status.started()
                            gave_up = await self._supervise()
                finally:
                    self._stop.unregister(stop_scope)
                    self._state = "stopping"
                    await self._stop_all()
                    self._nursery = None
        finally:
            self._state = "stopped"
            self._stop = None
            self._own_stop = StopSignal()  # fresh for the next run
        if gave_up is not None:
            raise gave_up from gave_up.reason.exception

    def _log_crash(self, child_id: str, crash: CrashReason) -> None:
        logging.getLogger(type(self).__module__).error(
            "supervisor %s: child %s crashed: %s",
            self.id,
            child_id,
            crash.summary(),
            exc_info=crash.exception,
            extra={"supervisor_id": self.id, "child_id": child_id, "reason": crash.summary()},
        )

    def _reset_for_run(self) -> None:
        """Per-run state of the subclass (e.g. backoff attempts); none by default."""

    async def _start_all(self) -> SupervisorGaveUp | None:
        """Start the initial children in order; a dynamic pool starts empty."""
        return None

    async def _supervise(self) -> SupervisorGaveUp:
        raise NotImplementedError

    async def _stop_all(self) -> None:
        raise NotImplementedError
