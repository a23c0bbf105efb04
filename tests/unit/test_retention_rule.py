"""The retention rule reads apply is the one writes apply: no row served yet unwritable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.retention import (
    MAX_RETENTION_DAYS,
    MICROS_PER_SECOND,
    SECONDS_PER_DAY,
    is_expired,
    retention_cutoff_us,
    ttl_seconds,
)

DAY_US = SECONDS_PER_DAY * MICROS_PER_SECOND
NOW_US = 1_780_000_000 * MICROS_PER_SECOND


@given(
    offset_us=st.integers(-(MAX_RETENTION_DAYS + 2) * DAY_US, 10 * DAY_US),
    days=st.integers(1, MAX_RETENTION_DAYS),
)
def test_expired_exactly_when_a_write_would_be_skipped(offset_us: int, days: int) -> None:
    record_us = NOW_US + offset_us
    assert is_expired(record_us, days, NOW_US) == (ttl_seconds(record_us, days, NOW_US) is None)


def test_the_cutoff_is_the_newest_expired_time() -> None:
    cutoff = retention_cutoff_us(2, NOW_US)
    assert cutoff == NOW_US - 2 * DAY_US
    assert is_expired(cutoff, 2, NOW_US)
    assert not is_expired(cutoff + 1, 2, NOW_US)


def test_a_lowered_retention_expires_what_a_longer_one_kept() -> None:
    three_days_old = NOW_US - 3 * DAY_US
    assert not is_expired(three_days_old, 30, NOW_US)
    assert is_expired(three_days_old, 2, NOW_US)


def test_a_retention_below_one_day_is_refused() -> None:
    with pytest.raises(ValueError, match="retention_days"):
        retention_cutoff_us(0, NOW_US)
