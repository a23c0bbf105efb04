"""What every session of one edge shares: registry, presence, storage, settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs

from notifactor.domain.notification import DeliveryUpdate
from notifactor.edge.registry import SessionRegistry
from notifactor.edge.session_clock import SessionClock
from notifactor.edge.settings import EdgeSettings
from notifactor.ports.notification_store import NotificationStore
from notifactor.ports.presence import Presence


class DeliveryRecording(Protocol):
    """Where sessions hand ``delivered``/``acked`` updates (batched to storage)."""

    async def record(self, update: DeliveryUpdate) -> None: ...


@attrs.frozen(kw_only=True)
class EdgeContext:
    """Dependencies of the session actors of one gateway process.

    Attributes:
        gateway_id: this process's instance id (its delivery stream and presence).
        registry: local sessions by (tenant, user), for fan-out and limits.
        presence: the cluster-wide registry the dispatcher routes by.
        store: read side of storage (resume, ack ownership checks).
        recorder: batched delivery-state writes.
        settings: timings and sizes.
        clock: wakes idle session writers at their deadlines; its
            :meth:`~SessionClock.run` must run while sessions do.
        gateway_stopping: whether the whole edge is stopping. Its sessions
            then leave their presence entries to the edge, which drops this
            gateway's registrations in one call once they are closed,
            instead of one Redis round trip per session.
    """

    gateway_id: str
    registry: SessionRegistry
    presence: Presence
    store: NotificationStore
    recorder: DeliveryRecording
    settings: EdgeSettings
    gateway_stopping: Callable[[], bool] = attrs.field(default=lambda: False)
    clock: SessionClock = attrs.Factory(SessionClock)
