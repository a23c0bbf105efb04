"""Concurrent ingest calls pipelined together on a real Redis decide exactly as one by one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis
import trio
from prometheus_client import REGISTRY

from notifactor.actors.stop import StopSignal, set_stop_signal
from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.adapters.redis_ingest_pipeline import IngestSenderStopped, PipelinedIngest
from notifactor.domain.rate_limit import RateRule
from notifactor.ports.ingest import Accepted, IngestItem, IngestResult, Limited
from tests.e2e.test_gateway_rate_limit_lua import _item

GENEROUS = RateRule.from_policy(rate_per_s=100_000, burst=100_000, daily_quota=0)


def pipelines_sent() -> float:
    return REGISTRY.get_sample_value("redis_ingest_pipeline_calls_count") or 0.0


@asynccontextmanager
async def sending(bus: PipelinedIngest) -> AsyncIterator[StopSignal]:
    stop = StopSignal()

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        set_stop_signal(stop)
        await bus.run(task_status=task_status)

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        yield stop
        stop.request()


def bus_for(
    client: coredis.Redis[bytes],
    prefix: str,
    *,
    call_timeout_s: float = 2.0,
    queue_size: int = 4096,
) -> PipelinedIngest:
    settings = IngestSettings(stream_prefix=f"{prefix}stream:", call_timeout_s=call_timeout_s)
    return PipelinedIngest(client, RedisIngest(client, settings), queue_size=queue_size)


async def call_all(
    bus: PipelinedIngest, calls: list[tuple[str, RateRule, IngestItem]]
) -> list[IngestResult]:
    results: list[IngestResult | None] = [None] * len(calls)

    async def one(index: int, tenant: str, rule: RateRule, item: IngestItem) -> None:
        results[index] = await bus.ingest(tenant, rule, [item])

    async with trio.open_nursery() as nursery:
        for index, (tenant, rule, item) in enumerate(calls):
            nursery.start_soon(one, index, tenant, rule, item)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


async def test_concurrent_calls_share_pipelines_and_all_land(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    bus = bus_for(redis_client, redis_prefix)
    tenants = [f"pipe-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    calls = [(tenants[i % 3], GENEROUS, _item(tenants[i % 3])) for i in range(200)]
    before = pipelines_sent()
    async with sending(bus):
        results = await call_all(bus, calls)
    ids = [r.outcomes[0].id for r in results if isinstance(r.outcomes[0], Accepted)]
    assert sorted(ids) == sorted(item.envelope.id for _, _, item in calls)
    assert await redis_client.xlen(f"{redis_prefix}stream:0") == 200
    # Fewer round trips than calls: concurrent calls went together.
    assert 1 <= pipelines_sent() - before < 200


async def test_limits_and_idempotency_hold_across_a_pipeline(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    bus = bus_for(redis_client, redis_prefix)
    tenant = f"pipe-{uuid.uuid4().hex[:8]}"
    tight = RateRule.from_policy(rate_per_s=0.001, burst=5, daily_quota=0)
    calls = [(tenant, tight, _item(tenant)) for _ in range(40)]
    same_key = f"other-{uuid.uuid4().hex[:8]}"
    keyed = []
    for _ in range(20):
        item = _item(same_key)
        keyed.append(
            (
                same_key,
                GENEROUS,
                IngestItem(envelope=item.envelope, partition=0, idempotency_key="k"),
            )
        )
    async with sending(bus):
        limited = await call_all(bus, calls)
        deduplicated = await call_all(bus, keyed)
    outcomes = [r.outcomes[0] for r in limited]
    assert sum(isinstance(o, Accepted) for o in outcomes) == 5
    assert sum(isinstance(o, Limited) and o.reason == "rate" for o in outcomes) == 35
    keyed_outcomes = [r.outcomes[0] for r in deduplicated]
    assert all(isinstance(o, Accepted) for o in keyed_outcomes)
    assert len({o.id for o in keyed_outcomes if isinstance(o, Accepted)}) == 1
    assert sum(isinstance(o, Accepted) and not o.duplicate for o in keyed_outcomes) == 1


async def test_a_flushed_script_cache_is_reloaded(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    bus = bus_for(redis_client, redis_prefix)
    tenant = f"pipe-{uuid.uuid4().hex[:8]}"
    async with sending(bus):
        await call_all(bus, [(tenant, GENEROUS, _item(tenant))])
        await redis_client.script_flush()
        results = await call_all(bus, [(tenant, GENEROUS, _item(tenant)) for _ in range(10)])
    assert all(isinstance(r.outcomes[0], Accepted) for r in results)
    assert await redis_client.xlen(f"{redis_prefix}stream:0") == 11


async def test_calls_left_when_the_sender_stops_get_an_error_not_a_hang(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    bus = bus_for(redis_client, redis_prefix)
    tenant = f"pipe-{uuid.uuid4().hex[:8]}"
    errors: list[IngestSenderStopped] = []

    async def call() -> None:
        try:
            await bus.ingest(tenant, GENEROUS, [_item(tenant)])
        except IngestSenderStopped as error:
            errors.append(error)

    async def stopped_sender() -> None:
        stop = StopSignal()
        stop.request()  # the sender is asked to stop as it starts
        set_stop_signal(stop)
        await bus.run()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(call)
            await trio.sleep(0.05)  # the calls are queued; no sender yet
            nursery.start_soon(stopped_sender)
    assert len(errors) == 3
    assert await redis_client.exists([f"{redis_prefix}stream:0"]) == 0
