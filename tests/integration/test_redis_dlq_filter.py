"""The DLQ listing's time filters on a real Redis: by when an entry died, not when it was appended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import coredis

from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_dlq import DlqFilter, RedisDeadLetterQueue
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
