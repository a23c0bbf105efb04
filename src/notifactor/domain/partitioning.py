"""Which stream partition a notification goes to.

All notifications of one (tenant, user) pair go to one partition, so a single
partition consumer sees them in acceptance order. The hash is CRC-32 from the
standard library: stable across processes, hosts and Python versions (unlike
``hash()``), and every gateway agrees with every dispatcher.
"""

from __future__ import annotations

import zlib

STREAM_PREFIX = "notifactor:stream:"


def partition_for(tenant_id: str, user_id: str, partitions: int) -> int:
    """The partition (0..partitions-1) of ``user_id`` in ``tenant_id``."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    # NUL cannot occur in either id, so ("a", "b:c") and ("a:b", "c") differ.
    key = f"{tenant_id}\x00{user_id}".encode()
    return zlib.crc32(key) % partitions


def stream_name(partition: int) -> str:
    """The Redis stream of one partition: ``notifactor:stream:{p}``."""
    return f"{STREAM_PREFIX}{partition}"
