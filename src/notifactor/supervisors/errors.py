"""Errors raised by supervisors to their parents and to pool users."""

from __future__ import annotations

from notifactor.actors.crash import CrashReason


class SupervisorError(Exception):
    """Base class of supervision errors."""


class SupervisorGaveUp(SupervisorError):
    """Restart intensity was exceeded: the supervisor stopped and escalates.

    Raised from ``Supervisor.run``; the parent supervisor treats it as a
    crash of this subtree (and may restart it, or give up in turn).

    Attributes:
        supervisor_id: the supervisor that gave up.
        child_id: the child whose crash (or exit) went over the limit.
        reason: why that child stopped.
    """

    def __init__(self, supervisor_id: str, child_id: str, reason: CrashReason) -> None:
        super().__init__(
            f"supervisor {supervisor_id!r} gave up: child {child_id!r} "
            f"exceeded the restart intensity ({reason.summary()})"
        )
        self.supervisor_id = supervisor_id
        self.child_id = child_id
        self.reason = reason


class ChildStartFailed(SupervisorError):
    """A dynamically added child failed before it reported ready."""

    def __init__(self, supervisor_id: str, child_id: str, reason: CrashReason) -> None:
        super().__init__(
            f"supervisor {supervisor_id!r}: child {child_id!r} failed to start ({reason.summary()})"
        )
        self.supervisor_id = supervisor_id
        self.child_id = child_id
        self.reason = reason


class PoolFull(SupervisorError):
    """A dynamic supervisor already runs ``max_children`` children."""

    def __init__(self, supervisor_id: str, max_children: int) -> None:
        super().__init__(f"supervisor {supervisor_id!r} is full ({max_children} children)")
        self.supervisor_id = supervisor_id
        self.max_children = max_children


class DuplicateChild(SupervisorError):
    """A dynamic supervisor already has a child with this id."""

    def __init__(self, supervisor_id: str, child_id: str) -> None:
        super().__init__(f"supervisor {supervisor_id!r} already has a child {child_id!r}")
        self.supervisor_id = supervisor_id
        self.child_id = child_id


class SupervisorNotRunning(SupervisorError):
    """Children can only be added while the supervisor runs."""

    def __init__(self, supervisor_id: str) -> None:
        super().__init__(f"supervisor {supervisor_id!r} is not running")
        self.supervisor_id = supervisor_id
