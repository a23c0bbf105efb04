from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.partitioning import partition_for, stream_name

ids = st.from_regex(r"[A-Za-z0-9._:@-]{1,20}", fullmatch=True)


@given(ids, ids, st.integers(min_value=1, max_value=1024))
def test_in_range_and_stable(tenant: str, user: str, partitions: int) -> None:
    p = partition_for(tenant, user, partitions)
    assert 0 <= p < partitions
    assert p == partition_for(tenant, user, partitions)


def test_known_value_is_fixed_across_versions() -> None:
    # Gateways and dispatchers of different versions must agree: pin the function.
    assert partition_for("tenant-a", "user-123", 16) == zlib.crc32(b"tenant-a\x00user-123") % 16


def test_separator_keeps_pairs_apart() -> None:
    assert zlib.crc32(b"a\x00b:c") != zlib.crc32(b"a:b\x00c")


def test_stream_name() -> None:
    assert stream_name(3) == "notifactor:stream:3"
