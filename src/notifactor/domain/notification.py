"""Storage records for notifications and their delivery status.

These are the values the dispatcher hands to storage and the views the
gateway reads back. They hold no behaviour beyond field conversions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from notifactor.domain.delivery_state import DeliveryState, DeliveryStatus
from notifactor.domain.timestamps import to_us


@attrs.frozen(kw_only=True)
class Notification:
    """An accepted notification, as persisted (SPEC §4 POST body plus id and time).

    ``id`` is time-ordered and unique within the platform; ``created_at`` is the
    acceptance time and fixes the notification's place in every time-ordered
    listing for good.
    """

    tenant_id: str
    id: str
    user_id: str
    channel: str
    content: str
    priority: str = "normal"
    metadata: dict[str, Any] = attrs.field(factory=dict)
    created_at: datetime

    @property
    def created_at_us(self) -> int:
        return to_us(self.created_at)


@attrs.frozen(kw_only=True)
class DeliveryUpdate:
    """One observed step of a delivery: "at ``event_time`` it was ``state``".

    Carries the notification's ``created_at`` so every denormalised copy
    (inbox, tenant history, retention) can be written without reading the
    notification first.

    Attributes:
        recipient_id: the user the delivery is for (today the notification's
            ``user_id``).
        attempts: attempts made so far as seen by the writer of this event;
            storage keeps the maximum ever seen.
        last_error: error of the failed attempt, or ``None``.
    """

    tenant_id: str
    notification_id: str
    recipient_id: str
    created_at: datetime
    state: DeliveryState
    event_time: datetime
    attempts: int = 0
    last_error: str | None = None

    @property
    def status(self) -> DeliveryStatus:
        return DeliveryStatus(
            state=self.state,
            event_time_us=to_us(self.event_time),
            last_error=self.last_error or "",
            attempts=self.attempts,
        )


@attrs.frozen(kw_only=True)
class NotificationView:
    """A notification with its current delivery status (SPEC §4 GET /v1/notifications/{id}).

    ``updated_at`` is the time of the winning status event, or ``created_at``
    while no status has been recorded (the notification is then ``accepted``).
    """

    notification: Notification
    status: DeliveryState
    attempts: int
    last_error: str | None
    updated_at: datetime


@attrs.frozen(kw_only=True)
class DeliveryRecord:
    """One row of a delivery listing (SPEC §4 GET /v1/tenants/{tenantId}/deliveries)."""

    notification_id: str
    user_id: str
    channel: str
    state: DeliveryState
    attempts: int
    last_error: str | None
    updated_at: datetime
    created_at: datetime


@attrs.frozen(kw_only=True)
class InboxEntry:
    """A stored notification replayed to a WebSocket session on ``resume``.

    ``cursor`` is the opaque position of this entry; a client that resumes
    after it receives exactly the entries that follow it. ``state_at_us`` is
    when the stored ``state`` was reached (µs since the epoch), or ``None``
    while no status is stored.
    """

    notification: Notification
    cursor: str
    state: DeliveryState
    state_at_us: int | None = None
