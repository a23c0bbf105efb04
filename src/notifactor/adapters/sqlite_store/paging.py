"""Keyset paging: where a page ends, and the next page's cursor.

Pure functions. The newest-first listings in
:mod:`~notifactor.adapters.sqlite_store.reads` read rows strictly before an
upper position (the cursor, or ``until``:
:func:`~notifactor.domain.cursor.newest_first_start`, shared with the
Cassandra store) and at or after a lower time (``since``), one row more than
the limit, which proves there is a next page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from notifactor.domain.cursor import CursorKind, Position, encode_cursor
from notifactor.domain.page import Page
from notifactor.domain.timestamps import to_us

T = TypeVar("T")


def lower_bound(since: datetime | None) -> int:
    """The earliest time (inclusive, epoch µs) a page reaches; ``-1`` for no bound."""
    return to_us(since) if since is not None else -1


def newest_first_page(
    kind: CursorKind,
    items: tuple[T, ...],
    *,
    more: bool,
    position: Callable[[T], Position],
) -> Page[T]:
    """A page of ``items``, with a cursor after the last one when ``more`` rows follow."""
    next_cursor = None
    if more:
        next_cursor = encode_cursor(kind, position(items[-1]))
    return Page(items=items, next_cursor=next_cursor)
