"""The sessions of this process, by tenant and user: fan-out and connection limits.

Fan-out never waits: each session's ``deliver`` callback queues the routed
message in that session's bounded outbox at once (no mailbox hop, no task
switch per session); a session whose outbox is full closes itself with 1013
(slow consumer) instead of slowing the others. A session whose outbox is half
full says so, and the delivery consumer then waits for that session's writer
(``make_room``) while it keeps writing, so a burst bigger than an outbox
reaches a client that reads; a writer that stalls is not waited for. Every lookup is keyed by
``(tenant_id, user_id)``, so a message can only reach sessions of its own
tenant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import attrs
from opentelemetry.trace import SpanContext

from notifactor.domain.routing import RoutedMessage


@attrs.frozen(kw_only=True)
class Deliver:
    """A routed notification for a session, with its frame text encoded once.

    ``trace`` is the fan-out span's span context when tracing records, so the
    session's socket write joins the notification's trace; None otherwise.
    """

    message: RoutedMessage
    frame: str
    trace: SpanContext | None = None


@attrs.frozen(eq=False, kw_only=True)
class SessionHandle:
    """What the registry knows of one session.

    Attributes:
        deliver: queues a routed message for the socket; never blocks, never
            raises (a session that cannot take it closes itself). Returns
            True when the session's outbox is backlogged (half full or more).
        make_room: waits while that backlog drains and the session's writer
            keeps writing (bounded: it gives up on a writer that stalls), so
            a burst to a client that reads is paced instead of closed.
        sent_ids: the ids the session remembers sending (its sent window).
    """

    session_id: str
    tenant_id: str
    user_id: str
    deliver: Callable[[Deliver], bool]
    make_room: Callable[[], Awaitable[None]]
    sent_ids: Callable[[], frozenset[str]] = frozenset


class FanOut(NamedTuple):
    """What one fan-out did: sessions reached, and those now backlogged."""

    sessions: int
    backlogged: tuple[SessionHandle, ...]


class SessionRegistry:
    """Live sessions by ``(tenant_id, user_id)`` and connection counts by tenant."""

    def __init__(self) -> None:
        self._by_user: dict[tuple[str, str], dict[str, SessionHandle]] = {}
        self._per_tenant: Counter[str] = Counter()
        # Sessions added whose presence registration is still on its way.
        self._registering: Counter[tuple[str, str]] = Counter()
        # Users whose presence count may be wrong: an unregister failed or
        # timed out, and nobody knows whether it took effect.
        self._unsettled: set[tuple[str, str]] = set()

    def __len__(self) -> int:
        return sum(len(sessions) for sessions in self._by_user.values())

    def reserve(self, tenant_id: str, limit: int) -> bool:
        """Count one more connection of ``tenant_id`` unless it already has ``limit``."""
        if self._per_tenant[tenant_id] >= limit:
            return False
        self._per_tenant[tenant_id] += 1
        return True

    def release(self, tenant_id: str) -> None:
        """Undo one :meth:`reserve`."""
        self._per_tenant[tenant_id] -= 1
        if self._per_tenant[tenant_id] <= 0:
            del self._per_tenant[tenant_id]

    def connections(self, tenant_id: str) -> int:
        return self._per_tenant[tenant_id]

    def add(self, handle: SessionHandle, *, registering: bool = False) -> None:
        """Make ``handle`` reachable by fan-out.

        ``registering``: its presence registration is still on its way; call
        :meth:`registration_done` once it has succeeded or failed.
        """
        key = (handle.tenant_id, handle.user_id)
        self._by_user.setdefault(key, {})[handle.session_id] = handle
        if registering:
            self._registering[key] += 1

    def registration_done(self, handle: SessionHandle) -> None:
        """The presence registration of ``handle`` (added ``registering``) is over."""
        key = (handle.tenant_id, handle.user_id)
        self._registering[key] -= 1
        if self._registering[key] <= 0:
            del self._registering[key]

    def remove(self, handle: SessionHandle) -> None:
        key = (handle.tenant_id, handle.user_id)
        sessions = self._by_user.get(key)
        if sessions is None:
            return
        sessions.pop(handle.session_id, None)
        if not sessions:
            del self._by_user[key]

    def user_counts(self) -> dict[tuple[str, str], int]:
        """Live sessions per ``(tenant_id, user_id)`` whose presence registration is done.

        A session still registering is left out: its own registration is
        about to count it, and a reassert that counted it as well would leave
        the registry one session too high.
        """
        counts = {
            key: len(sessions) - self._registering.get(key, 0)
            for key, sessions in self._by_user.items()
        }
        return {key: count for key, count in counts.items() if count > 0}

    def registering_users(self) -> set[tuple[str, str]]:
        """Users with a session whose presence registration is still on its way."""
        return set(self._registering)

    def unsettled_users(self) -> set[tuple[str, str]]:
        """Users whose registered count may be wrong (an unregister failed or timed out)."""
        return set(self._unsettled)

    def unregister_unsure(self, tenant_id: str, user_id: str) -> None:
        """An unregister of this user failed or timed out: settle the count later."""
        self._unsettled.add((tenant_id, user_id))

    def take_unsettled(self) -> dict[tuple[str, str], int]:
        """The exact live session count of each user to settle (0: none left).

        The users returned are no longer marked: mark them again with
        :meth:`unregister_unsure` if writing the counts fails. A user with a
        session still registering stays marked for a later call: its
        registration may land before or after the settlement.
        """
        ready = [key for key in self._unsettled if key not in self._registering]
        self._unsettled.difference_update(ready)
        return {key: len(self._by_user.get(key, ())) for key in ready}

    def sessions_of(self, tenant_id: str, user_id: str) -> list[SessionHandle]:
        return list(self._by_user.get((tenant_id, user_id), {}).values())

    def fan_out(self, deliver: Deliver) -> FanOut:
        """Hand ``deliver`` to every local session of its recipient."""
        message = deliver.message
        sessions = self._by_user.get((message.tenant_id, message.user_id))
        if not sessions:
            return FanOut(sessions=0, backlogged=())
        handles = list(sessions.values())
        backlogged = tuple(handle for handle in handles if handle.deliver(deliver))
        return FanOut(sessions=len(handles), backlogged=backlogged)
