from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.ids import (
    UuidV7Generator,
    is_notification_id,
    new_notification_id,
    uuid7_unix_ms,
)


@given(st.lists(st.integers(min_value=-5, max_value=5), min_size=1, max_size=300))
def test_strictly_increasing_even_when_the_clock_stalls_or_steps_back(steps: list[int]) -> None:
    generator = UuidV7Generator()
    now = 1_700_000_000_000
    ids = []
    for step in steps:
        now += step
        ids.append(generator.next_at(now))
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_sequence_overflow_borrows_the_next_millisecond() -> None:
    generator = UuidV7Generator()
    ids = [generator.next_at(1000, entropy=b"\xff" * 10) for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5000
    assert uuid7_unix_ms(ids[-1]) > 1000


def test_canonical_uuid_v7() -> None:
    text = new_notification_id()
    parsed = uuid.UUID(text)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == text
    assert is_notification_id(text)
    assert not is_notification_id(str(uuid.uuid4()))
    assert not is_notification_id("../etc/passwd")


@given(st.integers(min_value=0, max_value=2**48 - 1))
def test_timestamp_round_trip(ms: int) -> None:
    assert uuid7_unix_ms(UuidV7Generator().next_at(ms)) == ms
