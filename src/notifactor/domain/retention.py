"""Retention arithmetic: when a record expires and the TTL to write it with."""

from __future__ import annotations

MICROS_PER_SECOND = 1_000_000
SECONDS_PER_DAY = 86_400

MAX_TTL_S = 630_720_000
"""The longest TTL a row may carry (20 years: Cassandra refuses more)."""

INDEX_TTL_MARGIN_S = SECONDS_PER_DAY
"""How much longer an index row lives than the rows it points to."""

MAX_RETENTION_DAYS = (MAX_TTL_S - INDEX_TTL_MARGIN_S) // SECONDS_PER_DAY
"""The longest ``retention_days`` a tenant may have: every TTL, margin included, fits."""


def expires_at_us(record_time_us: int, retention_days: int) -> int:
    """When a record made at ``record_time_us`` leaves storage."""
    if retention_days <= 0:
        raise ValueError(f"retention_days must be > 0, got {retention_days}")
    return record_time_us + retention_days * SECONDS_PER_DAY * MICROS_PER_SECOND


def retention_cutoff_us(retention_days: int, now_us: int) -> int:
    """The newest record time already past ``retention_days`` at ``now_us``.

    A record made at or before the cutoff is expired: reads do not serve it,
    writes skip it, a purge deletes it. It is the rule :func:`ttl_seconds`
    applies at write time, restated for any later moment with the policy in
    force then, so that lowering a tenant's retention takes effect on rows
    already written (their stored expiry or TTL only ever ends them sooner).
    """
    if retention_days <= 0:
        raise ValueError(f"retention_days must be > 0, got {retention_days}")
    return now_us - retention_days * SECONDS_PER_DAY * MICROS_PER_SECOND


def is_expired(record_time_us: int, retention_days: int, now_us: int) -> bool:
    """Whether a record made at ``record_time_us`` is past ``retention_days`` at ``now_us``."""
    return record_time_us <= retention_cutoff_us(retention_days, now_us)


def ttl_seconds(record_time_us: int, retention_days: int, now_us: int) -> int | None:
    """Seconds left to keep a record, counted from its own time; ``None`` once it expired.

    Counting from the record's time (not the write time) means a replay of an
    old event never extends its life, and a replay after expiry writes nothing.
    A record from the future is kept for exactly the retention period.
    """
    remaining_us = expires_at_us(min(record_time_us, now_us), retention_days) - now_us
    if remaining_us <= 0:
        return None
    return max(1, -(-remaining_us // MICROS_PER_SECOND))
