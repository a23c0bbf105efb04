"""How a session resumes: the opening hold, the replay from storage and the merge.

Until the client's ``resume`` (or ``resume_grace_s`` after ``welcome``),
live frames are held: a client that resumes gets them merged into its
replay, in order, instead of ahead of older replayed ones; other frames
(``subscribe``, ``ping``, ...) do not end the hold. During any replay, live
frames are held the same way and released afterwards, minus the ids the
replay sent (:mod:`notifactor.domain.resume`). A replay that fails does not
release them: the session closes (1011) and the client resumes again.

A resume then looks back: what lies up to ``resume_lookback_s`` behind the
client's cursor and the client may not have is sent after ``resumed``, like
a late live delivery. A notification keeps its place in the inbox order
however late it is routed, so one routed while the user's presence was
lost, retried, or claimed from a dispatcher that died can sit behind a
cursor the client got from a newer one. The client may not have:

* what was never written to a socket (still ``pending`` or ``retrying``):
  without the look back it would stay pending for good;
* for a client that acks: what was written (``delivered``, not acked)
  *after* the client acked the cursor's own notification. A client that
  acks what it processes had not processed that one: a late one written to
  a connection that then dropped. Only when the cursor's notification is
  acked: a client that does not ack gets no copies of what it had (another
  of its sessions may have been written an older one later).

It comes after ``resumed`` because SPEC §5's replay is what lies *after* the
cursor, and ``resumed`` counts just that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from notifactor.actors.session_outbox import Outgoing
from notifactor.domain.cursor import CursorKind, Position, decode_cursor, inbox_cursor
from notifactor.domain.delivery_state import NEVER_WRITTEN, DeliveryState
from notifactor.domain.notification import InboxEntry
from notifactor.domain.resume import Keyed, ReplayMerge
from notifactor.domain.timestamps import to_us
from notifactor.domain.ws_frames import stored_notification_frame
from notifactor.edge.registry import Deliver
from notifactor.ports.notification_store import NotificationStore

_BEFORE_EVERYTHING = Position(time_us=-1, key="")


class Resumption:
    """The opening hold and the merge of the resume in progress, if any.

    Args:
        hold_limit: live frames held at once (over it: ``ReplayOverflow``).
    """

    __slots__ = ("_hold_limit", "merge", "opening")

    def __init__(self, hold_limit: int) -> None:
        self._hold_limit = hold_limit
        self.opening = True
        self.merge: ReplayMerge[Deliver] | None = ReplayMerge(_BEFORE_EVERYTHING, hold_limit)

    def hold(self, deliver: Deliver) -> bool:
        """Hold ``deliver`` if a merge is active; raises ``ReplayOverflow`` when full."""
        if self.merge is None:
            return False
        message = deliver.message
        position = Position(time_us=to_us(message.created_at), key=message.id)
        self.merge.hold(Keyed(id=message.id, position=position, item=deliver))
        return True

    def end_opening(self) -> list[Deliver]:
        """The opening is over without a resume: what was held, in order."""
        if not self.opening:
            return []
        self.opening = False
        return self.finish()

    def start_first(self, since: Position) -> ReplayMerge[Deliver] | None:
        """A ``resume`` as the first frame: the opening merge becomes its merge."""
        if not self.opening or self.merge is None:
            return None
        self.opening = False
        self.merge.since = since
        return self.merge

    def start(self, since: Position) -> ReplayMerge[Deliver] | None:
        """A later ``resume``: a fresh merge, or ``None`` if one is running."""
        if self.merge is not None:
            return None
        self.merge = ReplayMerge(since, self._hold_limit)
        return self.merge

    def finish(self) -> list[Deliver]:
        """End the merge: the held frames to send now, in order."""
        merge, self.merge = self.merge, None
        return [] if merge is None else [keyed.item for keyed in merge.release()]


async def replay(
    store: NotificationStore,
    *,
    tenant_id: str,
    user_id: str,
    since: str,
    page: int,
    merge: ReplayMerge[Deliver],
    send: Callable[[InboxEntry], Awaitable[bool]],
) -> int:
    """Send the user's inbox after ``since``, page by page; ``send`` decides per entry.

    Returns:
        How many entries ``send`` accepted (the ``count`` of ``resumed``).

    Raises:
        StoreError: storage failed; the caller answers ``resume_failed``.
    """
    count = 0
    cursor = since
    while True:
        entries = await store.inbox_after(tenant_id, user_id, cursor, page)
        for entry in entries:
            merge.replayed(entry.notification.id)
            if await send(entry):
                count += 1
        if len(entries) < page:
            return count
        cursor = entries[-1].cursor


async def look_back(
    store: NotificationStore,
    *,
    tenant_id: str,
    user_id: str,
    since: str,
    lookback_us: int,
    page: int,
    merge: ReplayMerge[Deliver],
    send: Callable[[InboxEntry], Awaitable[bool]],
) -> int:
    """Send what lies up to ``lookback_us`` behind ``since`` that the client may not have.

    That is what was never written to a socket, and what was written after
    the client acked the cursor's own notification (see the module docstring).

    Returns:
        How many entries ``send`` accepted.

    Raises:
        StoreError: storage failed.
    """
    if lookback_us <= 0:
        return 0
    position = decode_cursor(CursorKind.INBOX, since)
    acked_at_us = await _cursor_acked_us(store, tenant_id, user_id, position.key)
    # An empty key sorts before every id at that time.
    cursor = inbox_cursor("", max(0, position.time_us - lookback_us))
    count = 0
    while True:
        entries = await store.inbox_after(tenant_id, user_id, cursor, page)
        for entry in entries:
            notification = entry.notification
            if Position(time_us=notification.created_at_us, key=notification.id) >= position:
                return count  # the cursor's own notification, which the client has
            if entry.state in NEVER_WRITTEN or _written_after(entry, acked_at_us):
                merge.replayed(notification.id)
                if await send(entry):
                    count += 1
        if len(entries) < page:
            return count
        cursor = entries[-1].cursor


async def _cursor_acked_us(
    store: NotificationStore, tenant_id: str, user_id: str, notification_id: str
) -> int | None:
    """When the client acked the cursor's own notification (µs); None if it did not.

    None also when that notification is not stored or not this user's:
    nothing written is then sent again.
    """
    view = await store.get_notification(tenant_id, notification_id)
    if view is None or view.notification.user_id != user_id:
        return None
    if view.status is not DeliveryState.ACKED:
        return None
    return to_us(view.updated_at)


def _written_after(entry: InboxEntry, acked_at_us: int | None) -> bool:
    """Written to a socket, and not acked, after the cursor's notification was acked."""
    return (
        entry.state is DeliveryState.DELIVERED
        and acked_at_us is not None
        and entry.state_at_us is not None
        and entry.state_at_us > acked_at_us
    )


def replayed_frame(entry: InboxEntry) -> Outgoing:
    """The frame for a stored notification (recorded only if not delivered yet)."""
    notification = entry.notification
    text = stored_notification_frame(entry)
    record = entry.state not in (DeliveryState.DELIVERED, DeliveryState.ACKED)
    return Outgoing(
        text=text, id=notification.id, created_at=notification.created_at, record=record
    )
