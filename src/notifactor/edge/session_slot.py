"""One session's place in the pool and in its tenant's connection count."""

from __future__ import annotations

import trio

from notifactor.actors import ActorRef, run_actor
from notifactor.actors.session import SessionActor
from notifactor.edge.admission import ConnectionAdmission
from notifactor.edge.registry import Deliver
from notifactor.supervisors import NodeStatistics


class SessionSlot:
    """One session's place in the pool and in the tenant's connection count.

    A small object with bound methods instead of a handful of closures: ten
    thousand idle sessions each keep one. Live traffic reaches the session
    through the registry, not its mailbox (one slot): the mailbox only
    carries the supervisor's stop request.
    """

    __slots__ = (
        "_admission",
        "_reserved",
        "_session_id",
        "_tenant_id",
        "_terminated",
        "ref",
        "session",
        "started",
    )

    def __init__(self, admission: ConnectionAdmission, tenant_id: str, session_id: str) -> None:
        self._admission = admission
        self._tenant_id = tenant_id
        self._session_id = session_id
        self._reserved = True
        self.ref: ActorRef[Deliver] | None = None
        self.session: SessionActor | None = None
        self.started = False  # set by the listener once the pool runs the session
        self._terminated = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        assert self.ref is not None
        await run_actor(self.ref, self._factory, task_status=task_status)

    def _factory(self) -> SessionActor:
        assert self.session is not None
        return self.session

    def statistics(self) -> NodeStatistics:
        assert self.ref is not None
        return NodeStatistics(
            id=self.ref.name, kind="actor", state="running", mailbox=self.ref.statistics()
        )

    def release(self) -> None:
        """Give the tenant's connection back (once), locally and cluster-wide."""
        if self._reserved:
            self._reserved = False
            self._admission.release(self._tenant_id, self._session_id)

    def terminated(self) -> None:
        if self.ref is not None:
            self.ref.close()
        self.release()
        self._terminated.set()

    async def wait_terminated(self) -> None:
        """Wait until the pool has let the session go for good."""
        await self._terminated.wait()
