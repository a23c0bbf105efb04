"""Exact conversions between aware UTC datetimes and epoch microseconds.

Stores keep times as integer microseconds: exact ordering, exact cursors, and
no loss through Cassandra's millisecond ``timestamp`` type.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROS_PER_DAY = 86_400_000_000


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch; ``moment`` must carry a timezone."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: storage times must be timezone-aware")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def wall_clock_us() -> int:
    """The wall clock now, in microseconds since the epoch."""
    return time.time_ns() // 1000


def from_us(micros: int) -> datetime:
    """The aware UTC datetime ``micros`` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def day_bucket(micros: int) -> int:
    """The UTC day number (days since the epoch) that ``micros`` falls in."""
    return micros // MICROS_PER_DAY
