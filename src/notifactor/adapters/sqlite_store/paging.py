"""Keyset paging: where a page starts and ends, and the next page's cursor.

Pure functions. The newest-first listings in
:mod:`~notifactor.adapters.sqlite_store.reads` read rows strictly before an
upper position (the cursor, or ``until``) and at or after a lower time
(``since``), one row more than the limit, which proves there is a next page.
The inbox reads oldest first, strictly after its cursor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final, TypeVar

from notifactor.domain.cursor import CursorKind, Position, decode_cursor, encode_cursor
from notifactor.domain.page import Page
from notifactor.domain.timestamps import to_us

T = TypeVar("T")

# Large enough to be "no upper bound" for any position compare.
_MAX_US: Final = (1 << 62) - 1


def upper_bound(kind: CursorKind, cursor: str | None, until: datetime | None) -> Position:
    """Where a page starts (exclusive): the earlier of the cursor and ``until``."""
    upper = Position(time_us=_MAX_US, key="")
    if cursor is not None:
        upper = decode_cursor(kind, cursor)
    if until is not None:
        upper = min(upper, Position(time_us=to_us(until), key=""))
    return upper


def inbox_start(cursor: str | None) -> Position:
    """Where an inbox read starts (exclusive): the cursor, or before every row."""
    after = Position(time_us=-1, key="")
    if cursor is not None:
        after = decode_cursor(CursorKind.INBOX, cursor)
    return after


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
