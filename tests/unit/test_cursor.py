"""Opaque cursors round-trip and refuse what they did not produce."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.cursor import (
    CursorKind,
    InvalidCursorError,
    Position,
    decode_cursor,
    encode_cursor,
    inbox_cursor,
)

positions = st.builds(
    Position,
    time_us=st.integers(-1, 2**62),
    key=st.text(max_size=40),
    sub_key=st.text(max_size=20),
)


@given(st.sampled_from(list(CursorKind)), positions)
def test_round_trip_and_url_safe(kind: CursorKind, position: Position) -> None:
    cursor = encode_cursor(kind, position)
    assert decode_cursor(kind, cursor) == position
    assert all(c.isalnum() or c in "-_" for c in cursor)


@given(positions, positions)
def test_position_order_is_tuple_order(a: Position, b: Position) -> None:
    assert (a < b) == (a.as_tuple() < b.as_tuple())


def test_a_cursor_of_one_listing_is_refused_by_another() -> None:
    cursor = inbox_cursor("n-1", 5)
    with pytest.raises(InvalidCursorError):
        decode_cursor(CursorKind.DELIVERIES, cursor)


@pytest.mark.parametrize("bad", ["", "x", "!!!!", "bm90IGpzb24", "WzEsMl0"])
def test_garbage_is_refused(bad: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(CursorKind.INBOX, bad)
