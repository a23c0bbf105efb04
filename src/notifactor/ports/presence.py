"""Presence: which gateway instances hold live sessions of which users.

Gateways write it (one registration per WebSocket session), the dispatcher
reads it to route. A registration lives only as long as its gateway keeps
heartbeating: when a gateway crashes, its registrations stop counting within
one heartbeat TTL, without anyone cleaning up after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class Presence(Protocol):
    """The presence registry."""

    async def register(self, tenant_id: str, user_id: str, gateway_id: str) -> None:
        """Record one more live session of the user on ``gateway_id``.

        Also counts as a heartbeat of ``gateway_id``. Sessions are counted:
        two sessions of a user on one gateway need two ``unregister`` calls.
        """
        ...

    async def unregister(self, tenant_id: str, user_id: str, gateway_id: str) -> None:
        """Record that one session of the user on ``gateway_id`` ended."""
        ...

    async def heartbeat(self, gateway_id: str) -> None:
        """Keep ``gateway_id`` and its registrations alive for one more TTL.

        A gateway calls this well within the TTL (a third of it is a good
        period). Registrations lost meanwhile (a TTL that lapsed while the
        registry was unreachable, a registry that lost data) are found per
        user by :meth:`missing`, and the gateway should :meth:`reassert` them.
        """
        ...

    async def reassert(self, gateway_id: str, counts: Mapping[tuple[str, str], int]) -> None:
        """Register again every ``(tenant_id, user_id)`` with its live session count.

        Idempotent, and never lowers a count registered meanwhile.
        """
        ...

    async def missing(
        self, gateway_id: str, counts: Mapping[tuple[str, str], int]
    ) -> set[tuple[str, str]]:
        """The ``(tenant_id, user_id)`` of ``counts`` registered with fewer sessions on ``gateway_id``.

        A per-user check: one user's lost registration is found even when
        another user's count is too high (a lost ``unregister``), which a sum
        over the gateway's users would hide.
        """
        ...

    async def settle(self, gateway_id: str, counts: Mapping[tuple[str, str], int]) -> None:
        """Set the session count of each ``(tenant_id, user_id)`` on ``gateway_id`` exactly.

        A count of 0 removes the gateway from the user's registrations. For
        users whose ``unregister`` failed or timed out, where nobody knows
        whether it took effect.
        """
        ...

    async def gateways_for(self, tenant_id: str, user_id: str) -> frozenset[str]:
        """The live gateways holding at least one session of the user."""
        ...

    async def gateways_for_many(
        self, recipients: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], frozenset[str]]:
        """:meth:`gateways_for` of many ``(tenant_id, user_id)`` pairs in one round trip.

        Recipients without a live gateway may be missing from the result.
        """
        ...

    async def drop_gateway(self, gateway_id: str) -> None:
        """Forget every registration of ``gateway_id`` (a gateway shutting down cleanly)."""
        ...
