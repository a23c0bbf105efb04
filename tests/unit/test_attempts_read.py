"""Attempts as readers see them: a stored notification never reads fewer than one."""

from __future__ import annotations

from functools import reduce

from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.delivery_state import (
    STORED_ATTEMPTS,
    STORED_STATE,
    DeliveryState,
    DeliveryStatus,
    attempts_read,
    merge,
)

statuses = st.builds(
    DeliveryStatus,
    state=st.sampled_from(list(DeliveryState)),
    event_time_us=st.integers(0, 2**53 - 1),
    last_error=st.sampled_from(["", "timeout"]),
    attempts=st.integers(0, 20),
)


def stored(created_us: int) -> DeliveryStatus:
    """The status a stored notification has before any is written."""
    return DeliveryStatus(state=STORED_STATE, event_time_us=created_us, attempts=STORED_ATTEMPTS)


def test_no_status_and_a_status_without_attempts_read_as_the_stored_attempt() -> None:
    assert attempts_read(None) == STORED_ATTEMPTS
    assert attempts_read(0) == STORED_ATTEMPTS
    assert attempts_read(5) == 5


@given(st.lists(statuses, max_size=8))
def test_attempts_seen_by_readers_never_go_backwards(updates: list[DeliveryStatus]) -> None:
    seen = [attempts_read(None)]
    for i in range(1, len(updates) + 1):
        seen.append(attempts_read(reduce(merge, updates[:i]).attempts))
    assert seen == sorted(seen)


@given(st.integers(0, 2**53 - 1), st.lists(statuses, min_size=1, max_size=8))
def test_reading_is_merging_with_the_stored_status(
    created_us: int, updates: list[DeliveryStatus]
) -> None:
    written = reduce(merge, updates)
    assert attempts_read(written.attempts) == merge(stored(created_us), written).attempts
