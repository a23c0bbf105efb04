"""Listing inputs as pure functions: page sizes, RFC 3339 times and DLQ cursors, for any text."""

from __future__ import annotations

import re
from datetime import UTC

from hypothesis import given
from hypothesis import strategies as st

from notifactor.adapters.redis_dlq import is_dlq_cursor
from notifactor.domain.rfc3339 import parse_rfc3339
from notifactor.gateway.problems import FieldError
from notifactor.gateway.query import page_limit
from notifactor.ports.notification_store import MAX_PAGE_LIMIT

UINT64_MAX = 2**64 - 1
_digits = st.text(alphabet="0123456789", min_size=1, max_size=25)


@given(st.text(max_size=30))
def test_page_limit_takes_exactly_the_ascii_integers_in_range(raw: str) -> None:
    errors: list[FieldError] = []
    limit = page_limit({"limit": raw}, 50, errors)
    valid = re.fullmatch(r"[0-9]{1,3}", raw) is not None and 1 <= int(raw) <= MAX_PAGE_LIMIT
    if valid:
        assert (limit, errors) == (int(raw), [])
    else:
        assert limit == 50
        assert [e.field for e in errors] == ["limit"]


@given(st.one_of(st.integers(0, 4000).map(lambda n: "1" * n), st.text(alphabet="0123456789²٣")))
def test_page_limit_never_raises_on_digit_like_text(raw: str) -> None:
    page_limit({"limit": raw}, 50, [])


@given(
    st.one_of(
        st.text(max_size=40),
        st.datetimes().map(lambda d: d.isoformat() + "Z"),
        st.builds(
            lambda d, h: f"{d.isoformat()}{'+' if h >= 0 else '-'}{abs(h):02d}:00",
            st.datetimes(),
            st.integers(-23, 23),
        ),
    )
)
def test_parse_rfc3339_returns_utc_or_raises_value_error(text: str) -> None:
    try:
        moment = parse_rfc3339(text)
    except ValueError:
        return
    assert moment.tzinfo is UTC


@given(st.one_of(st.tuples(_digits, _digits).map("-".join), st.text(max_size=30)))
def test_dlq_cursor_is_a_nonzero_pair_of_uint64(text: str) -> None:
    match = re.fullmatch(r"([0-9]+)-([0-9]+)", text)
    expected = (
        match is not None
        and len(match[1]) <= 20
        and len(match[2]) <= 20
        and int(match[1]) <= UINT64_MAX
        and int(match[2]) <= UINT64_MAX
        and (int(match[1]), int(match[2])) != (0, 0)
    )
    assert is_dlq_cursor(text) is expected
