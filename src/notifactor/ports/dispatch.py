"""What the dispatcher needs from the stream bus (Redis streams in production).

The partition consumer talks to this port only, so the Redis specifics
(consumer groups, XAUTOCLAIM, Lua scripts, key names) stay in
:mod:`notifactor.adapters.redis_dispatch`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs


@attrs.frozen(kw_only=True)
class StreamEntry:
    """One entry of a partition stream.

    Attributes:
        id: the stream id (``ms-seq``).
        fields: the entry's fields (values as bytes).
        deliveries: how many times the group has delivered it, this time
            included (1 for a fresh read; higher after claims).
    """

    id: str
    fields: Mapping[str, bytes]
    deliveries: int = 1


@attrs.frozen(kw_only=True)
class ClaimBatch:
    """Result of one XAUTOCLAIM step.

    Attributes:
        next_start: where the next step starts; ``"0-0"`` when the scan wrapped.
        entries: entries now owned by the claiming consumer.
        deleted_ids: pending ids whose entries no longer exist (already trimmed).
    """

    next_start: str
    entries: tuple[StreamEntry, ...]
    deleted_ids: tuple[str, ...]


class Handoff(enum.Enum):
    """What a gateway's delivery stream did with one routed notification."""

    TAKEN = "taken"
    GONE = "gone"
    """The gateway is no longer alive: nothing was appended."""
    FULL = "full"
    """The gateway is alive but its stream holds its bound of unread entries."""


class DispatchBus(Protocol):
    """Partition streams, per-gateway delivery streams, retry schedule and DLQ."""

    async def ensure_group(self, partition: int) -> None:
        """Create the consumer group (and the stream) if missing."""
        ...

    async def read_new(
        self, partition: int, consumer: str, *, count: int, block_ms: int
    ) -> list[StreamEntry]:
        """Entries never delivered to the group, waiting up to ``block_ms``."""
        ...

    async def read_own_pending(
        self, partition: int, consumer: str, *, count: int
    ) -> list[StreamEntry]:
        """Entries already delivered to ``consumer`` and not acknowledged (after a restart)."""
        ...

    async def claim_idle(
        self, partition: int, consumer: str, *, min_idle_ms: int, start: str, count: int
    ) -> ClaimBatch:
        """Take over entries other consumers left pending for ``min_idle_ms``."""
        ...

    async def ack(self, partition: int, ids: Sequence[str]) -> None:
        """Acknowledge processed entries."""
        ...

    async def ack_and_retry_later(
        self, partition: int, entry_id: str, *, due_ms: int, fields: Mapping[str, bytes]
    ) -> None:
        """Atomically acknowledge ``entry_id`` and schedule ``fields`` to be re-added at ``due_ms``."""
        ...

    async def ack_and_dead_letter(
        self, partition: int, entry_id: str, fields: Mapping[str, bytes]
    ) -> None:
        """Atomically acknowledge ``entry_id`` and append ``fields`` to the DLQ stream."""
        ...

    async def route(self, deliveries: Sequence[tuple[str, bytes]]) -> list[Handoff]:
        """Append each ``(gateway_id, message)`` to that gateway's delivery stream, in order.

        A delivery to a gateway that is no longer alive (``GONE``), or whose
        delivery stream is full because that gateway is far behind (``FULL``),
        is not appended; the result answers per delivery.
        """
        ...

    async def promote_due_retries(self, partition: int, *, now_ms: int, limit: int) -> int:
        """Move retries due at ``now_ms`` back into the partition stream; how many moved."""
        ...

    async def trim_acknowledged(self, partition: int) -> int | None:
        """Drop entries every group has acknowledged; returns our group's lag, if known."""
        ...

    async def dlq_fill(self) -> tuple[int, int]:
        """The dead-letter stream's length and the length past which its oldest entries go."""
        ...

    async def leave(self, partition: int, consumer: str) -> bool:
        """Remove ``consumer`` from the group if it holds no pending entry."""
        ...

    async def reap_stale_consumers(self, partition: int, *, idle_ms: int, keep: str) -> list[str]:
        """Remove consumers without pending entries idle longer than ``idle_ms``."""
        ...
