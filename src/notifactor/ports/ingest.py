"""The ingestion port: admit and durably enqueue notifications in one atomic step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from notifactor.domain.envelope import Envelope
from notifactor.domain.rate_limit import DenyReason, RateRule


@attrs.frozen(kw_only=True)
class IngestItem:
    """One notification to enqueue.

    Attributes:
        envelope: what goes into the stream (its ``id`` is fresh).
        partition: the partition stream it belongs to.
        idempotency_key: the client's key, scoped to the envelope's tenant.
    """

    envelope: Envelope
    partition: int
    idempotency_key: str | None = None


@attrs.frozen(kw_only=True)
class Accepted:
    """Enqueued now (``duplicate=False``) or earlier under the same idempotency key."""

    id: str
    duplicate: bool = False


@attrs.frozen(kw_only=True)
class Limited:
    """Refused by the tenant's rate limit or daily quota; nothing was enqueued."""

    reason: DenyReason
    retry_after_us: int


@attrs.frozen(kw_only=True)
class Shed:
    """Refused because the partition's consumer lag is over its bound."""


Outcome = Accepted | Limited | Shed


@attrs.frozen(kw_only=True)
class IngestResult:
    """Per-item outcomes in request order, and the limiter state after the call.

    Attributes:
        outcomes: one per item, in order.
        now_us: the clock reading the decisions used.
        tat_us: the tenant's GCRA theoretical arrival time afterwards.
        used_today: quota units used today afterwards.
    """

    outcomes: tuple[Outcome, ...]
    now_us: int
    tat_us: int
    used_today: int


class IngestUnavailable(Exception):
    """The ingest bus could not be reached or did not answer.

    The request may or may not have been enqueued: the client retries, with
    its ``Idempotency-Key`` when a duplicate matters.
    """


class IngestTimedOut(IngestUnavailable):
    """The bus did not answer within its time bound (Redis stalled or far behind)."""


class IngestBus(Protocol):
    """Admission, idempotency and enqueue, atomically per call."""

    async def ingest(
        self,
        tenant_id: str,
        rule: RateRule,
        items: Sequence[IngestItem],
        *,
        now_us: int | None = None,
    ) -> IngestResult:
        """Decide and enqueue every item in one atomic step.

        An item whose idempotency key was seen within the TTL is
        :class:`Accepted` with the earlier id and ``duplicate=True``, and is
        not enqueued again. ``now_us=None`` uses the shared server clock.

        Bounded in time: a call not answered within the bus's bound raises
        :class:`IngestTimedOut`, so a stalled Redis never holds a request open.
        """
        ...

    async def get_accepted(self, tenant_id: str, notification_id: str) -> Envelope | None:
        """The envelope of a recently accepted notification (read-your-write), if any."""
        ...

    async def ping(self) -> None:
        """Raise unless the backing store answers."""
        ...
