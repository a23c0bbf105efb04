"""Opaque cursors round-trip and refuse what they did not produce."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.cursor import (
    END_US,
    CursorKind,
    InvalidCursorError,
    Position,
    decode_cursor,
    encode_cursor,
    inbox_cursor,
    inbox_start,
    newest_first_start,
)

TIME_US_RANGE = range(0, 2**63)  # a signed 64-bit column in every store

positions = st.builds(
    Position,
    time_us=st.integers(0, 2**63 - 1),
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


@given(
    st.sampled_from(list(CursorKind)),
    st.one_of(
        st.integers(),
        st.integers(-(2**64), 2**64),
        st.integers(2**63 - 3, 2**63 + 3),
        st.integers(-3, 3),
    ),
    st.text(max_size=20),
)
def test_a_position_outside_the_time_range_is_refused(
    kind: CursorKind, time_us: int, key: str
) -> None:
    """A crafted cursor never reaches storage with a time it cannot hold (OverflowError)."""
    cursor = encode_cursor(kind, Position(time_us=time_us, key=key))
    if time_us in TIME_US_RANGE:
        assert decode_cursor(kind, cursor) == Position(time_us=time_us, key=key)
    else:
        with pytest.raises(InvalidCursorError):
            decode_cursor(kind, cursor)


def test_a_newest_first_page_starts_at_the_earlier_of_cursor_and_until() -> None:
    later = Position(time_us=5_000_000, key="b")
    cursor = encode_cursor(CursorKind.AUDIT, later)
    until = datetime.fromtimestamp(2, UTC)
    assert newest_first_start(CursorKind.AUDIT, None, None) == Position(time_us=END_US, key="")
    assert newest_first_start(CursorKind.AUDIT, cursor, None) == later
    assert newest_first_start(CursorKind.AUDIT, cursor, until) == Position(
        time_us=2_000_000, key=""
    )
    with pytest.raises(InvalidCursorError):
        newest_first_start(CursorKind.DLQ, cursor, None)
    assert inbox_start(None) == Position(time_us=-1, key="")
    assert inbox_start(encode_cursor(CursorKind.INBOX, later)) == later
