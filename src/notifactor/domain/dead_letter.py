"""Dead letters: deliveries whose attempts were exhausted (SPEC §6)."""

from __future__ import annotations

from datetime import datetime

import attrs

from notifactor.domain.timestamps import to_us


@attrs.frozen(kw_only=True)
class DeadLetter:
    """A notification that went to the dead-letter stream, indexed for the admin API.

    One row per (tenant, notification): recording the same dead letter again
    (a replayed stream entry) rewrites the same row.
    """

    tenant_id: str
    notification_id: str
    user_id: str
    channel: str
    reason: str
    attempts: int
    last_error: str | None
    trace_id: str | None
    dead_at: datetime
    created_at: datetime

    @property
    def dead_at_us(self) -> int:
        return to_us(self.dead_at)
