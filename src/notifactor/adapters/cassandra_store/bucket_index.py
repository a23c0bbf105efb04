"""The bucket index: which days of a listing's scope hold rows.

Listings are partitioned by day, and a day may hold no rows at all; scanning
every day of a retention window would cost a query per empty day. So every
write also records its day in ``bucket_index`` under the listing's scope, and
a scan reads the days it has to visit from there first.
"""

from __future__ import annotations

from typing import Final

from notifactor.adapters.cassandra_store.batches import RowWrite
from notifactor.adapters.cassandra_store.execution import StatementRunner
from notifactor.domain.retention import INDEX_TTL_MARGIN_S

DELIVERIES_SCOPE: Final = "deliveries"
AUDIT_SCOPE: Final = "audit"
DLQ_SCOPE: Final = "dlq"


def inbox_scope(user_id: str) -> str:
    """The scope of one user's inbox (and of their deliveries)."""
    return f"inbox:{user_id}"


def bucket_writes(
    runner: StatementRunner, entries: dict[tuple[str, str, int], int]
) -> list[RowWrite]:
    """The index rows of ``entries``: ``(tenant_id, scope, day)`` to the longest TTL of its rows."""
    # The index row outlives the rows of its day by a day.
    return [
        RowWrite(
            partition=("bucket_index", tenant_id, scope),
            statement=runner.bind(
                "insert_bucket", (tenant_id, scope, day, ttl + INDEX_TTL_MARGIN_S)
            ),
            size=64,
        )
        for (tenant_id, scope, day), ttl in entries.items()
    ]


async def days_newest_first(
    runner: StatementRunner, tenant_id: str, scope: str, newest_day: int, oldest_day: int
) -> list[int]:
    """The indexed days of ``scope`` from ``newest_day`` down to ``oldest_day``, inclusive."""
    rows = await runner.query("buckets_desc", (tenant_id, scope, newest_day, oldest_day))
    return [row.day for row in rows]


async def days_oldest_first(
    runner: StatementRunner, tenant_id: str, scope: str, first_day: int
) -> list[int]:
    """The indexed days of ``scope`` from ``first_day`` on, oldest first."""
    rows = await runner.query("buckets_asc", (tenant_id, scope, first_day))
    return [row.day for row in rows]
