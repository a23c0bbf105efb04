"""A page of a cursor-paged listing."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """Items of one page, in listing order, and the cursor of the next page.

    ``next_cursor`` is ``None`` when the listing is exhausted. A page may be
    shorter than the limit (even empty) while ``next_cursor`` is still set,
    when a filter discarded many rows; keep following it.
    """

    items: tuple[T, ...]
    next_cursor: str | None
