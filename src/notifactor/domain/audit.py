"""Tenant audit events: who did what to a tenant's data, kept for the retention period."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from notifactor.domain.timestamps import to_us


@attrs.frozen(kw_only=True)
class AuditEvent:
    """One audit event. ``event_id`` makes replays of the same event idempotent."""

    tenant_id: str
    event_id: str
    event_time: datetime
    event_type: str
    metadata: dict[str, Any] = attrs.field(factory=dict)

    @property
    def event_time_us(self) -> int:
        return to_us(self.event_time)
