"""One session's place in the pool and in its tenant's connection count."""

from __future__ import annotations

from notifactor.actors.mailbox import MailboxStatistics
from notifactor.edge.admission import ConnectionAdmission
from notifactor.supervisors import NodeStatistics

_OPEN_MAILBOX = MailboxStatistics(capacity=1, depth=0, peak=0, closed=False)
_CLOSED_MAILBOX = MailboxStatistics(capacity=1, depth=0, peak=0, closed=True)


class SessionSlot:
    """One session's place in the pool and in the tenant's connection count.

    A small object with bound methods instead of a handful of closures: ten
    thousand idle sessions each keep one. A session has no address (no
    ``ActorRef``, no mailbox; the pool runs ``SessionActor.serve``): live
    traffic reaches it through the registry, and the pool's stop request
    through its stop signal. Its node in the tree still shows the one-slot
    mailbox sessions used to have (never used, so always empty), so the tree
    and the mailbox metrics read as before.
    """

    __slots__ = (
        "_admission",
        "_reserved",
        "_session_id",
        "_tenant_id",
        "_terminated",
        "child_id",
        "started",
    )

    def __init__(self, admission: ConnectionAdmission, tenant_id: str, session_id: str) -> None:
        self._admission = admission
        self._tenant_id = tenant_id
        self._session_id = session_id
        self._reserved = True
        self._terminated = False
        self.child_id = f"session-{session_id}"
        self.started = False  # set by the listener once the pool runs the session

    def statistics(self) -> NodeStatistics:
        mailbox = _CLOSED_MAILBOX if self._terminated else _OPEN_MAILBOX
        return NodeStatistics(id=self.child_id, kind="actor", state="running", mailbox=mailbox)

    def release(self) -> None:
        """Give the tenant's connection back (once), locally and cluster-wide."""
        if self._reserved:
            self._reserved = False
            self._admission.release(self._tenant_id, self._session_id)

    def terminated(self) -> None:
        """The pool let the session go for good."""
        self._terminated = True
        self.release()
