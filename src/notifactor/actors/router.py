"""Routing: which gateways get a notification, and handing it to them.

The router looks the recipient up in the presence registry and appends one
:class:`~notifactor.domain.routing.RoutedMessage` to the delivery stream of
every live gateway holding a session of the recipient. It owns no state, so
partition consumers share one instance.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from notifactor.domain.envelope import Envelope
from notifactor.domain.routing import encode_routed, routed_message
from notifactor.ports.dispatch import DispatchBus, Handoff
from notifactor.ports.presence import Presence


@attrs.frozen(kw_only=True)
class RouteResult:
    """Where one notification went.

    Attributes:
        gateways: the gateways that have it: those that took it now, and
            those that took it on an earlier attempt (``already``) and still
            hold a session of the recipient; empty when the recipient is
            offline or routing failed.
        error: why routing failed, or ``None``: every gateway of the
            recipient vanished before the hand-off, or one of them has a full
            delivery stream (then the attempt is deferred or retried even if
            another gateway took it; that one is not sent it again).
        refused: the failure is a full delivery stream, which says nothing
            about the notification (the consumer defers it without spending
            an attempt, for a while).
    """

    gateways: frozenset[str]
    error: str | None = None
    refused: bool = False

    @property
    def routed(self) -> bool:
        return bool(self.gateways)


Presences = dict[tuple[str, str], frozenset[str]]
"""Live gateways by ``(tenant_id, user_id)``."""

_NONE: frozenset[str] = frozenset()
#: The result of a recipient with no live gateway (shared: results are immutable).
_OFFLINE = RouteResult(gateways=_NONE)


class Router:
    """Routes notifications to the gateways of their recipients."""

    def __init__(self, presence: Presence, bus: DispatchBus) -> None:
        self._presence = presence
        self._bus = bus

    async def route(self, envelope: Envelope, attempt: int) -> RouteResult:
        """Route one notification (see :meth:`route_many`)."""
        (result,) = await self.route_many([(envelope, attempt)])
        return result

    async def route_many(self, items: Sequence[tuple[Envelope, int]]) -> list[RouteResult]:
        """Hand each notification to every live gateway of its recipient, in order.

        One presence lookup and one routing call for the whole batch.

        Raises:
            Redis errors: the whole batch failed (transient for the caller).
        """
        present = await self.lookup([envelope for envelope, _ in items])
        return await self.route_to(items, present)

    async def lookup(self, envelopes: Sequence[Envelope]) -> Presences:
        """The live gateways of the recipients of ``envelopes`` (offline ones may be missing)."""
        recipients = {(envelope.tenant_id, envelope.user_id) for envelope in envelopes}
        return await self._presence.gateways_for_many(sorted(recipients))

    async def route_to(
        self,
        items: Sequence[tuple[Envelope, int]],
        present: Presences,
        already: Sequence[frozenset[str]] | None = None,
    ) -> list[RouteResult]:
        """Route ``items`` to the gateways ``present`` (from :meth:`lookup`) names.

        ``already[i]``: gateways that took item ``i`` on an earlier attempt;
        it is not handed to them again.
        """
        deliveries: list[tuple[str, bytes]] = []
        owners: list[int] = []
        for index, (envelope, attempt) in enumerate(items):
            gateways = present.get((envelope.tenant_id, envelope.user_id))
            if not gateways:
                continue
            if already is not None and already[index]:
                gateways = gateways - already[index]
                if not gateways:
                    continue
            message = encode_routed(routed_message(envelope, attempt))
            for gateway in sorted(gateways):
                deliveries.append((gateway, message))
                owners.append(index)
        # Only items handed to some gateway have an entry here.
        taken: dict[int, set[str]] = {}
        full: dict[int, set[str]] = {}
        if deliveries:
            answers = await self._bus.route(deliveries)
            for (gateway, _), owner, answer in zip(deliveries, owners, answers, strict=True):
                if answer is Handoff.TAKEN:
                    taken.setdefault(owner, set()).add(gateway)
                elif answer is Handoff.FULL:
                    full.setdefault(owner, set()).add(gateway)
        results: list[RouteResult] = []
        for index, (envelope, _) in enumerate(items):
            wanted = present.get((envelope.tenant_id, envelope.user_id), _NONE)
            had = already[index] if already is not None else _NONE
            if not wanted and not had:
                results.append(_OFFLINE)  # nothing to hand it to, nothing held before
                continue
            have = frozenset(taken.get(index, ())) | (had & wanted)
            refused = full.get(index)
            error = None
            if refused:
                error = f"delivery stream full on {', '.join(sorted(refused))}"
            elif wanted and not have:
                error = f"no live gateway took the notification (tried {', '.join(sorted(wanted))})"
            results.append(RouteResult(gateways=have, error=error, refused=bool(refused)))
        return results
