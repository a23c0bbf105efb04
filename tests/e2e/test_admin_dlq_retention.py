"""``POST /v1/admin/dlq/replay`` never replays a dead letter past its tenant's retention.

The DLQ stream keeps whole envelopes (content included), bounded only by
count, so an old one can outlive the tenant's ``retention_days``. Replaying it
would hand expired content to live sessions; the endpoint reports it as
``skipped_expired`` instead and enqueues nothing for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import msgspec
import pytest

from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.domain.envelope import ENVELOPE_FIELD, Envelope
from tests.e2e.admin_gateway import serve_admin_gateway
from tests.e2e.conftest import GENEROUS, RunningGateway
from tests.integration.dispatcher_harness import append_dead_letter, make_envelope

RETENTION_DAYS = 2


@pytest.fixture
async def short_retention_gateway(
    redis_url: str, tmp_path: Path, redis_prefix: str, tenant: str
) -> AsyncIterator[RunningGateway]:
    """The admin gateway, ``tenant`` keeping its rows for :data:`RETENTION_DAYS`."""
    policy = attrs.evolve(GENEROUS, retention_days=RETENTION_DAYS)
    async with serve_admin_gateway(
        redis_url, tmp_path, redis_prefix, tenants={tenant: policy}
    ) as running:
        yield running


async def _dead_letter(
    gateway: RunningGateway, redis_prefix: str, tenant: str, accepted_at: datetime
) -> Envelope:
    """Append one dead letter of ``tenant`` whose notification was accepted at ``accepted_at``."""
    envelope = msgspec.structs.replace(
        make_envelope(tenant, "user-1", content=f"accepted {accepted_at.isoformat()}"),
        accepted_at=accepted_at,
    )
    await append_dead_letter(
        gateway.redis, RedisKeys(prefix=redis_prefix).dlq, envelope, first_attempt_at=accepted_at
    )
    return envelope


async def _enqueued(gateway: RunningGateway, redis_prefix: str) -> list[bytes]:
    """Every envelope replay has appended to a partition stream."""
    keys = RedisKeys(prefix=redis_prefix)
    found: list[bytes] = []
    for partition in range(gateway.config.supervision.partitions):
        for entry in await gateway.redis.xrange(keys.stream(partition)):
            found.append(bytes(entry.field_values[ENVELOPE_FIELD.encode()]))
    return found


async def test_replay_skips_a_dead_letter_past_retention(
    short_retention_gateway: RunningGateway, redis_prefix: str, tenant: str
) -> None:
    gateway = short_retention_gateway
    now = datetime.now(UTC)
    old = await _dead_letter(gateway, redis_prefix, tenant, now - timedelta(days=5))
    fresh = await _dead_letter(gateway, redis_prefix, tenant, now - timedelta(hours=1))
    headers = gateway.auth(tenant, scopes=("admin",))
    async with gateway.client() as client:
        dry = await client.post("/v1/admin/dlq/replay", json={"dry_run": True}, headers=headers)
        done = await client.post("/v1/admin/dlq/replay", json={"dry_run": False}, headers=headers)
    assert dry.status_code == 200, dry.text
    assert dry.json()["counts"] == {"skipped_expired": 1, "would_replay": 1}
    assert done.status_code == 200, done.text
    report = done.json()
    assert report["dry_run"] is False
    assert report["counts"] == {"skipped_expired": 1, "replayed": 1}
    actions = {item["notification_id"]: item["action"] for item in report["items"]}
    assert actions == {old.id: "skipped_expired", fresh.id: "replayed"}
    enqueued = await _enqueued(gateway, redis_prefix)
    assert [msgspec.json.decode(raw)["id"] for raw in enqueued] == [fresh.id]
