"""The Lua script on the real Redis decides exactly like the pure GCRA + quota model."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import coredis

from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.domain.envelope import Envelope
from notifactor.domain.ids import new_notification_id
from notifactor.domain.rate_limit import MICROS_PER_DAY, RateRule, RateState, decide
from notifactor.ports.ingest import Accepted, IngestItem, Limited


def _item(tenant: str) -> IngestItem:
    envelope = Envelope(
        id=new_notification_id(),
        tenant_id=tenant,
        user_id="u",
        channel="c",
        content="x",
        accepted_at=datetime.now(UTC),
        traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
    )
    return IngestItem(envelope=envelope, partition=0)


async def test_lua_matches_pure_model(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    rng = random.Random(7)
    for rule in (
        RateRule.from_policy(rate_per_s=3, burst=4, daily_quota=0),
        RateRule.from_policy(rate_per_s=50, burst=1, daily_quota=0),
        RateRule.from_policy(rate_per_s=1000, burst=10, daily_quota=25),
    ):
        tenant = f"lua-{uuid.uuid4().hex[:8]}"
        ingest = RedisIngest(redis_client, IngestSettings(stream_prefix=f"{redis_prefix}stream:"))
        state = RateState()
        now = 20_000 * MICROS_PER_DAY + MICROS_PER_DAY - 2_000_000  # crosses a UTC day boundary
        for _ in range(300):
            now += rng.choice([0, 0, 1, 500, 20_000, 100_000, 400_000])
            cost = rng.choice([1, 1, 1, 2, 3])
            items = [_item(tenant) for _ in range(cost)]
            result = await ingest.ingest(tenant, rule, items, now_us=now)
            for outcome in result.outcomes:
                decision, state = decide(rule, state, now)
                if decision.allowed:
                    assert isinstance(outcome, Accepted)
                else:
                    assert isinstance(outcome, Limited)
                    assert outcome.reason == decision.reason
                    assert outcome.retry_after_us == decision.retry_after_us
            assert result.tat_us == state.tat_us
            assert result.used_today == (state.used if state.day == now // MICROS_PER_DAY else 0)


async def test_ingest_survives_a_flushed_script_cache(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    """EVALSHA on a server that forgot the script (restart, SCRIPT FLUSH) loads it and retries."""
    ingest = RedisIngest(redis_client, IngestSettings(stream_prefix=f"{redis_prefix}stream:"))
    rule = RateRule.from_policy(rate_per_s=1000, burst=10, daily_quota=0)
    tenant = f"flush-{uuid.uuid4().hex[:8]}"
    first = await ingest.ingest(tenant, rule, [_item(tenant)])
    await redis_client.script_flush()
    second = await ingest.ingest(tenant, rule, [_item(tenant)])
    assert isinstance(first.outcomes[0], Accepted)
    assert isinstance(second.outcomes[0], Accepted)
    assert await redis_client.xlen(f"{redis_prefix}stream:0") == 2
