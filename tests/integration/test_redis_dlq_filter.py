"""The DLQ listing's time filters on a real Redis: by when an entry died, not when it was appended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import coredis

from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_dlq import (
    DEAD_AT_TO_APPEND_SLACK_MS,
    DlqFilter,
    RedisDeadLetterQueue,
    append_slack_ms,
)
from notifactor.domain.dlq_entry import DLQ_ENTRY_FIELD, DlqEntry, encode_dlq_entry


def entry(notification_id: str, dead_at: datetime) -> DlqEntry:
    return DlqEntry(
        reason="exhausted",
        notification_id=notification_id,
        tenant_id="tenant-a",
        attempts=3,
        last_error="boom",
        first_attempt_at=dead_at - timedelta(seconds=5),
        last_attempt_at=dead_at,
        trace_id=None,
        source_stream="s",
        source_id="1-0",
        dead_at=dead_at,
    )


async def test_until_counts_dead_at_even_when_the_append_came_later(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    keys = RedisKeys(prefix=redis_prefix)
    dlq = RedisDeadLetterQueue(redis_client, keys=keys)
    now = datetime.now(UTC)
    # Died 3 s ago but appended only now (a slow storage write in between).
    await redis_client.xadd(
        keys.dlq, {DLQ_ENTRY_FIELD: encode_dlq_entry(entry("early", now - timedelta(seconds=3)))}
    )
    await redis_client.xadd(keys.dlq, {DLQ_ENTRY_FIELD: encode_dlq_entry(entry("late", now))})
    until = now - timedelta(seconds=1)
    records, _cursor = await dlq.page(DlqFilter(until=until), limit=10)
    assert [r.entry.notification_id for r in records] == ["early"]
    records, _cursor = await dlq.page(DlqFilter(since=until), limit=10)
    assert [r.entry.notification_id for r in records] == ["late"]
    records, _cursor = await dlq.page(DlqFilter(), limit=10)
    assert [r.entry.notification_id for r in records] == ["late", "early"]


def test_the_until_slack_covers_the_dead_letter_storage_bound() -> None:
    assert append_slack_ms(10.0) == DEAD_AT_TO_APPEND_SLACK_MS
    assert append_slack_ms(300.0) == 360_000  # the bound and a minute


async def test_until_finds_an_append_as_late_as_the_configured_storage_bound(
    redis_client: coredis.Redis[bytes], redis_prefix: str
) -> None:
    """A dispatcher allowed 300 s for the storage write: its dead letter may be appended 300 s late."""
    keys = RedisKeys(prefix=redis_prefix)
    now = datetime.now(UTC)
    await redis_client.xadd(
        keys.dlq, {DLQ_ENTRY_FIELD: encode_dlq_entry(entry("slow", now - timedelta(seconds=300)))}
    )
    until = now - timedelta(seconds=299)
    default = RedisDeadLetterQueue(redis_client, keys=keys)
    assert (await default.page(DlqFilter(until=until), limit=10))[0] == []  # 120 s is not enough
    slack = append_slack_ms(300.0)
    dlq = RedisDeadLetterQueue(redis_client, keys=keys, append_slack_ms=slack)
    records, _cursor = await dlq.page(DlqFilter(until=until), limit=10)
    assert [r.entry.notification_id for r in records] == ["slow"]
