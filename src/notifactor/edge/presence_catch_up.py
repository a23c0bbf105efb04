"""Sending open sessions what was routed while this gateway's presence was lost.

When Redis loses a gateway's presence registrations (unreachable for longer
than the presence TTL, restarted without persistence, failed over), the
dispatcher routes the notifications of that gateway's users to nobody: they
are stored ``pending`` and acknowledged. The sessions stayed open, so their
clients have no reason to ``resume``. Once the delivery consumer's presence
check has registered the users again, :class:`PresenceCatchUp` reads each
such user's inbox from shortly before the time asked for it (the last check
that found that user registered), and hands the entries never written to a socket
(``pending``, ``retrying``) to the user's live sessions, like late live
frames. A notification a session remembered sending when the catch-up
reached it is not handed to it (its sent window, 512 ids by default: one sent
longer ago than that may come again, as with a resume); a session drops
frames of channels it is not subscribed to and holds frames during its own
resume.

One catch-up runs at a time, users one after the other (one storage read
per page at a time, however many users the gateway holds); a reassert that
comes while one runs is caught up after it. A storage failure stops the
catch-up at that user with a warning: the rest stays pending until those
clients resume.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from notifactor.domain.cursor import inbox_cursor
from notifactor.domain.delivery_state import NEVER_WRITTEN
from notifactor.domain.notification import InboxEntry
from notifactor.domain.routing import RoutedMessage
from notifactor.domain.ws_frames import stored_notification_frame
from notifactor.edge.registry import Deliver, SessionRegistry
from notifactor.ports.notification_store import NotificationStore, StoreError

log = logging.getLogger("notifactor.edge.delivery")

#: How far before the time asked for the inbox is read: the notification
#: times come from the clocks of other hosts (the REST gateways).
CLOCK_SLACK_US = 5_000_000

User = tuple[str, str]
"""``(tenant_id, user_id)``."""


def stored_deliver(entry: InboxEntry) -> Deliver:
    """A stored notification as a live delivery (no trace; attempt 1: storage has no count)."""
    notification = entry.notification
    message = RoutedMessage(
        id=notification.id,
        tenant_id=notification.tenant_id,
        user_id=notification.user_id,
        channel=notification.channel,
        content=notification.content,
        priority=notification.priority,
        metadata=dict(notification.metadata),
        created_at=notification.created_at,
        cursor=entry.cursor,
        attempt=1,
        traceparent="",
    )
    return Deliver(message=message, frame=stored_notification_frame(entry))


class PresenceCatchUp:
    """Catches the live sessions of reasserted users up (see the module docstring).

    Args:
        store: the notification store (the sessions' resume reads it too).
        registry: this gateway's sessions.
        page: inbox entries per storage read.
        slack_us: read from this long before the time asked for
            (:data:`CLOCK_SLACK_US` by default).
    """

    def __init__(
        self,
        store: NotificationStore,
        registry: SessionRegistry,
        *,
        page: int,
        slack_us: int | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._page = page
        self._slack_us = CLOCK_SLACK_US if slack_us is None else slack_us
        self._wanted: dict[User, int] = {}
        self._asked = trio.Event()

    def request(self, since_by_user: Mapping[User, int]) -> None:
        """Ask for a catch-up of each user from its time; merged with one not started yet."""
        for user, since_us in since_by_user.items():
            self._wanted[user] = min(since_us, self._wanted.get(user, since_us))
        self._asked.set()

    async def run(self) -> None:
        """Run the catch-ups asked for, one at a time, until cancelled."""
        while True:
            await self._asked.wait()
            self._asked = trio.Event()
            wanted, self._wanted = self._wanted, {}
            if not wanted:
                continue
            try:
                await self.catch_up(dict(sorted(wanted.items())))
            except Exception:  # a bug here must not stop live delivery
                log.exception(
                    "presence catch-up failed", extra={"event": "presence_catch_up_failed"}
                )

    async def catch_up(self, since_by_user: Mapping[User, int]) -> tuple[int, int]:
        """Send each user's never-written notifications since its time to its sessions.

        Returns:
            How many users were handed at least one notification, and how many
            notifications were handed to a session (a session still drops a
            channel it is not subscribed to).
        """
        queue = list(since_by_user.items())
        reached = handed = 0
        for done, ((tenant_id, user_id), since_us) in enumerate(queue):
            cursor = inbox_cursor("", max(0, since_us - self._slack_us))
            try:
                sent = await self._catch_up_user(tenant_id, user_id, cursor)
            except StoreError as error:
                log.warning(
                    "presence catch-up stopped: storage failed (%s); %d users not caught up,"
                    " their clients' next resume looks back for it",
                    error,
                    len(queue) - done,
                    extra={"event": "presence_catch_up_failed"},
                )
                break
            reached += 1 if sent else 0
            handed += sent
        log.info(
            "presence catch-up: %d notifications sent to the sessions of %d users",
            handed,
            reached,
            extra={"event": "presence_catch_up"},
        )
        return reached, handed

    async def _catch_up_user(self, tenant_id: str, user_id: str, cursor: str) -> int:
        """One user's catch-up; how many notifications were handed to a session of the user.

        Each session is checked against the ids it remembered sending when
        the catch-up reached it: the catch-up's own frames push older ids out
        of a session's sent window, and those must not look unsent.
        """
        sent_before: dict[str, frozenset[str]] = {}
        handed = 0
        while handles := self._registry.sessions_of(tenant_id, user_id):
            entries = await self._store.inbox_after(tenant_id, user_id, cursor, self._page)
            for entry in entries:
                if entry.state not in NEVER_WRITTEN:
                    continue
                deliver = stored_deliver(entry)
                reached = False
                for handle in handles:
                    before = sent_before.get(handle.session_id)
                    if before is None:
                        before = sent_before[handle.session_id] = handle.sent_ids()
                    if entry.notification.id in before:
                        continue
                    reached = True
                    if handle.deliver(deliver):
                        # Paced like a live burst: a catch-up bigger than an
                        # outbox reaches a client that reads.
                        await handle.make_room()
                handed += reached
            if len(entries) < self._page:
                break
            cursor = entries[-1].cursor
        return handed
