"""Newest-first listings: keyset scans across day buckets, and their cursors.

Deliveries, the audit log and dead letters are listed newest first. Each is
partitioned by day, so a page walks the indexed days downwards from the
cursor's position, reading rows in clustering order until it has one item
more than the limit (which proves there is a next page).

Filters (a delivery state, a dead-letter reason) run here, not in CQL, so a
filter that matches little could read a whole retention window for one page.
A scan therefore stops after :data:`SCAN_BUDGET` rows and returns a short (even
empty) page whose cursor resumes after the last row read.

Rows made at or before the tenant's retention cutoff (its ``retention_days``
now) are past retention, whatever TTL they were written with: a scan stops
there as it stops at ``since``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final, Generic, TypeAlias, TypeVar

import attrs

from notifactor.adapters.cassandra_store.bucket_index import days_newest_first
from notifactor.adapters.cassandra_store.execution import StatementRunner
from notifactor.domain.cursor import (
    END_US,
    CursorKind,
    Position,
    encode_cursor,
    newest_first_start,
)
from notifactor.domain.page import Page
from notifactor.domain.timestamps import day_bucket, to_us
from notifactor.ports.notification_store import check_limit

T = TypeVar("T")

#: Rows a filtered listing reads per call before it returns a short page.
SCAN_BUDGET: Final = 2000

Fetch: TypeAlias = Callable[[int, Position, int], Awaitable[list[tuple[Position, T | None]]]]
"""Reads rows of one day, newest first, strictly before a position, at most a
given number: each row's position and its item (``None`` = skip it)."""


@attrs.frozen(kw_only=True)
class Listing(Generic[T]):
    """What a newest-first listing scans, and how it reads one day.

    Attributes:
        kind: the kind of cursor the listing accepts and returns.
        scope: the listing's scope in the bucket index.
        fetch: reads one day's rows, and makes them items.
        filtered: whether ``fetch`` may skip rows, so reading more per query pays.
    """

    kind: CursorKind
    scope: str
    fetch: Fetch[T]
    filtered: bool


async def page_newest_first(
    runner: StatementRunner,
    tenant_id: str,
    listing: Listing[T],
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
    cutoff_us: int,
) -> Page[T]:
    """One page of ``listing``: ``since`` inclusive, ``until`` exclusive, after ``cursor``.

    Rows made at or before ``cutoff_us`` (past the tenant's retention) are
    never reached.

    Raises:
        InvalidCursorError: ``cursor`` is not a cursor of ``listing.kind``.
        ValueError: ``limit`` is outside 1..500.
    """
    check_limit(limit)
    upper = newest_first_start(listing.kind, cursor, until)
    since_us = max(to_us(since) if since is not None else 0, cutoff_us + 1)
    buckets = await days_newest_first(
        runner,
        tenant_id,
        listing.scope,
        day_bucket(min(upper.time_us, END_US)),
        day_bucket(max(since_us, 0)),
    )
    items, next_cursor = await _scan_desc(
        kind=listing.kind,
        buckets=buckets,
        upper=upper,
        since_us=since_us,
        limit=limit,
        fetch=listing.fetch,
        filtered=listing.filtered,
    )
    return Page(items=tuple(items), next_cursor=next_cursor)


async def _scan_desc(
    *,
    kind: CursorKind,
    buckets: list[int],
    upper: Position,
    since_us: int,
    limit: int,
    fetch: Fetch[T],
    filtered: bool,
) -> tuple[list[T], str | None]:
    """Walk ``buckets`` newest first from ``upper``, collecting up to ``limit`` items.

    Returns the items and the next cursor. The scan stops early after
    :data:`SCAN_BUDGET` rows; the cursor then points at the last row read
    (not necessarily returned), so the next call resumes right after it.
    """
    items: list[tuple[Position, T]] = []
    scanned = 0
    last_scanned: Position | None = None
    for day in buckets:
        # The first day from the upper position, every earlier day whole.
        position = upper if day == day_bucket(upper.time_us) else Position(time_us=END_US, key="")
        while True:
            want = limit + 1 - len(items)
            fetch_size = min(max(want, 50 if filtered else want), 1000)
            rows = await fetch(day, position, fetch_size)
            for row_position, item in rows:
                if row_position.time_us < since_us:
                    return _finish(kind, items, limit, None)
                scanned += 1
                last_scanned = row_position
                if item is not None:
                    items.append((row_position, item))
                    if len(items) > limit:
                        return _finish(kind, items, limit, None)
            # Checked before moving on to an earlier day too: a filter that
            # matches little over many small days stops here as well.
            if scanned >= SCAN_BUDGET and last_scanned is not None:
                return _finish(kind, items, limit, last_scanned)
            if len(rows) < fetch_size:
                break
            position = rows[-1][0]
    return _finish(kind, items, limit, None)


def _finish(
    kind: CursorKind,
    items: list[tuple[Position, T]],
    limit: int,
    stopped_at: Position | None,
) -> tuple[list[T], str | None]:
    """The first ``limit`` items, and a cursor if more may follow.

    A cursor after the last item returned when there is one item over the
    limit; else after ``stopped_at`` when the scan budget ran out; else none.
    """
    if len(items) > limit:
        return [item for _, item in items[:limit]], encode_cursor(kind, items[limit - 1][0])
    if stopped_at is not None:
        return [item for _, item in items], encode_cursor(kind, stopped_at)
    return [item for _, item in items], None
