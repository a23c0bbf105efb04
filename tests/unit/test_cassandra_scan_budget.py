"""A filtered newest-first listing stops after its scan budget, across days too."""

from __future__ import annotations

from notifactor.adapters.cassandra_store.paging import SCAN_BUDGET, _scan_desc
from notifactor.domain.cursor import END_US, CursorKind, Position

DAY_US = 86_400_000_000
DAYS = 120
ROWS_PER_DAY = 45  # fewer than a filtered fetch asks for: each day ends in a short fetch


async def test_a_filter_that_matches_nothing_reads_at_most_the_budget_per_call() -> None:
    fetches: list[int] = []
    read = 0

    async def fetch(day: int, below: Position, size: int) -> list[tuple[Position, str | None]]:
        nonlocal read
        fetches.append(day)
        rows = [
            Position(time_us=day * DAY_US + n, key=f"k{n:03d}")
            for n in range(ROWS_PER_DAY - 1, -1, -1)
        ]
        rows = [row for row in rows if row < below][:size]
        read += len(rows)
        return [(row, None) for row in rows]  # the filter keeps none of them

    buckets = list(range(DAYS, 0, -1))
    items, cursor = await _scan_desc(
        kind=CursorKind.DELIVERIES,
        buckets=buckets,
        upper=Position(time_us=END_US, key=""),
        since_us=0,
        limit=10,
        fetch=fetch,
        filtered=True,
    )
    assert items == []
    assert cursor is not None  # the next call resumes after the last row read
    assert read < SCAN_BUDGET + ROWS_PER_DAY
    assert len(fetches) < DAYS
