"""A notification written late, behind the client's cursor, to a connection that then dropped.

A dispatcher killed with entries in flight leaves them to be claimed about
30 s later; they are then written to the user's session behind the cursor
the client already has from newer ones. If that connection drops before the
client reads them, its ``resume`` from that cursor must send them again:
they are ``delivered`` (written to a socket), never ``acked``. What the
connection carried *before* the cursor's own notification is not sent again.

Real gateway, dispatcher and WebSocket edge, real Redis, both storage
backends. The late write is put into storage as the session would have
recorded it; the client then drops without reading anything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.ids import UuidV7Generator
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.domain.timestamps import to_us
from tests.e2e.stores import Storage
from tests.e2e.ws_support import running_stack

pytestmark = pytest.mark.e2e


def _late_notification(before: datetime, user_id: str) -> Notification:
    """One accepted a second before ``before`` (its place in the inbox is behind it)."""
    created = before - timedelta(seconds=1)
    ident = UuidV7Generator().next_at(to_us(created) // 1000)
    return Notification(
        tenant_id="acme",
        id=ident,
        user_id=user_id,
        channel="alerts",
        content="claimed late",
        created_at=created,
    )


async def test_a_late_write_lost_with_the_connection_is_sent_again_on_resume(
    redis_url: str, tmp_path: Path, redis_prefix: str, storage: Storage
) -> None:
    async with running_stack(redis_url, tmp_path, redis_prefix, storage=storage) as s:
        first = await s.connect("acme", "lena")
        early = await s.post("acme", "lena", content="early")
        early_frame = await first.recv_json()
        assert early_frame["id"] == early  # written, never acked
        newest = await s.post("acme", "lena", content="newest")
        newest_frame = await first.recv_json()
        assert newest_frame["id"] == newest
        await first.send_json({"type": "ack", "id": newest})
        await s.wait_status("acme", newest, "acked")

        view = await s.store.get_notification("acme", newest)
        assert view is not None
        late = _late_notification(view.notification.created_at, "lena")
        await s.store.save_notifications([late])
        await s.store.apply_delivery_updates(
            [
                DeliveryUpdate(
                    tenant_id="acme",
                    notification_id=late.id,
                    recipient_id="lena",
                    created_at=late.created_at,
                    state=DeliveryState.DELIVERED,
                    event_time=datetime.now(UTC),  # written after ``newest`` was acked
                )
            ]
        )
        await first.close()  # dropped without reading what was written last

        second = await s.connect("acme", "lena")
        await second.send_json({"type": "resume", "since": newest_frame["cursor"]})
        assert await second.recv_json() == {"type": "resumed", "count": 0}
        again = await second.recv_json()
        assert (again["id"], again["content"]) == (late.id, "claimed late")
        # ``early`` was written before the cursor's notification: not sent again.
        await second.send_json({"type": "ping"})
        assert await second.recv_json() == {"type": "pong"}
        await second.close()
