"""Grouping single-row writes into unlogged batches, one partition each.

Writes are grouped by partition, and each group is sent as one unlogged batch
(a single mutation on one replica set, token-aware routed) or as a single
statement; rows of different partitions never share a batch. Chunks stay well
under Cassandra's ``batch_size_fail_threshold`` (50 KiB).
"""

from __future__ import annotations

from typing import Any, Final

import attrs
from cassandra.query import BatchStatement, BatchType, BoundStatement

#: Keeps unlogged batches well under Cassandra's batch_size_fail_threshold (50 KiB).
_BATCH_BYTES: Final = 24 * 1024
_BATCH_STATEMENTS: Final = 64


@attrs.frozen
class RowWrite:
    """One bound statement and the partition it lands in.

    Attributes:
        partition: any hashable key naming the table and partition key values;
            writes with equal keys may share a batch.
        size: an estimate of the statement's bytes, for the batch limit.
    """

    partition: tuple[Any, ...]
    statement: BoundStatement
    size: int


def batch_statements(writes: list[RowWrite]) -> list[Any]:
    """One unlogged batch (or a lone statement) per partition chunk of ``writes``.

    A partition's writes are chunked in order, a new chunk starting when the
    current one holds 64 statements or would exceed 24 KiB.
    """
    groups: dict[tuple[Any, ...], list[list[RowWrite]]] = {}
    for write in writes:
        chunks = groups.setdefault(write.partition, [[]])
        chunk = chunks[-1]
        if chunk and (
            len(chunk) >= _BATCH_STATEMENTS
            or sum(w.size for w in chunk) + write.size > _BATCH_BYTES
        ):
            chunk = []
            chunks.append(chunk)
        chunk.append(write)
    statements: list[Any] = []
    for chunks in groups.values():
        for chunk in chunks:
            if len(chunk) == 1:
                statements.append(chunk[0].statement)
            else:
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for write in chunk:
                    batch.add(write.statement)
                batch.is_idempotent = True
                statements.append(batch)
    return statements
