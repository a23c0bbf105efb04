"""Properties of the router's per-recipient decisions (``Router.route_to``), on in-memory ports.

What :mod:`notifactor.actors.router` promises for each item, in input order:

* routed (``gateways`` non-empty) iff at least one of the recipient's gateways
  took the notification, and ``gateways`` is exactly the set that took it;
* a recipient without a live gateway (missing from the presences, or with an
  empty set) is left alone: not routed, no error (it stays ``pending``);
* a recipient all of whose gateways refused (vanished before the hand-off)
  gets an error naming the gateways tried (a transient failure for the caller);
* a partial hand-off (some gateways took it) is a success, without an error.

It also makes at most one routing call per batch, none when nobody is online,
and each hand-off carries the routed message of its own item and attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

import attrs
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from notifactor.actors.router import Presences, Router, RouteResult
from notifactor.domain.envelope import Envelope
from notifactor.domain.routing import decode_routed
from notifactor.ports.dispatch import DispatchBus, Handoff
from notifactor.ports.presence import Presence

GATEWAYS = ("gw-a", "gw-b", "gw-c", "gw-d")
USERS = tuple(f"user-{i}" for i in range(6))
TENANTS = ("tenant-a", "tenant-b")


@attrs.define
class RouteBus:
    """A bus whose ``route`` answers from ``alive`` or, if set, from ``outcomes`` in order."""

    alive: frozenset[str] = frozenset()
    outcomes: list[Handoff] | None = None
    calls: list[list[tuple[str, bytes]]] = attrs.field(factory=list)

    async def route(self, deliveries: Sequence[tuple[str, bytes]]) -> list[Handoff]:
        self.calls.append(list(deliveries))
        await trio.lowlevel.checkpoint()
        if self.outcomes is not None:
            assert len(self.outcomes) == len(deliveries)
            return list(self.outcomes)
        return [Handoff.TAKEN if g in self.alive else Handoff.GONE for g, _ in deliveries]


@attrs.define
class MapPresence:
    """A presence registry answering from a fixed map."""

    present: Mapping[tuple[str, str], frozenset[str]]
    lookups: list[list[tuple[str, str]]] = attrs.field(factory=list)

    async def gateways_for_many(
        self, recipients: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], frozenset[str]]:
        self.lookups.append(list(recipients))
        await trio.lowlevel.checkpoint()
        return {r: self.present[r] for r in recipients if r in self.present}


def _envelope(tenant_id: str, user_id: str, index: int) -> Envelope:
    return Envelope(
        id=f"n-{index:04d}",
        tenant_id=tenant_id,
        user_id=user_id,
        channel="alerts",
        content=f"content {index}",
        accepted_at=datetime(2026, 1, 1, tzinfo=UTC),
        # Deterministic (no `random` inside a Hypothesis strategy).
        traceparent=f"00-{index + 1:032x}-{index + 1:016x}-01",
    )


recipients = st.tuples(st.sampled_from(TENANTS), st.sampled_from(USERS))


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[tuple[Envelope, int]], Presences]:
    """Items (repeated recipients allowed) and a presence map with 0..3 gateways each.

    A recipient without a gateway is either missing from the map or mapped to an
    empty set (``lookup`` may do either); the map may also name recipients that
    are not in the batch.
    """
    who = draw(st.lists(recipients, min_size=0, max_size=12))
    items = [
        (_envelope(tenant, user, index), draw(st.integers(1, 5)))
        for index, (tenant, user) in enumerate(who)
    ]
    present: Presences = {}
    for recipient in {*who, *draw(st.lists(recipients, max_size=3))}:
        gateways = draw(st.frozensets(st.sampled_from(GATEWAYS), max_size=3))
        if gateways or draw(st.booleans()):
            present[recipient] = gateways
    return items, present


def _route(
    items: list[tuple[Envelope, int]], present: Presences, bus: RouteBus
) -> list[RouteResult]:
    router = Router(cast(Presence, MapPresence({})), cast(DispatchBus, bus))

    async def main() -> list[RouteResult]:
        return await router.route_to(items, present)

    return trio.run(main)


def _wanted(envelope: Envelope, present: Presences) -> frozenset[str]:
    return present.get((envelope.tenant_id, envelope.user_id), frozenset())


@settings(max_examples=300)
@given(batches(), st.frozensets(st.sampled_from(GATEWAYS)))
def test_each_result_is_routed_pending_or_failed_as_its_gateways_answered(
    batch: tuple[list[tuple[Envelope, int]], Presences], alive: frozenset[str]
) -> None:
    items, present = batch
    bus = RouteBus(alive=alive)
    results = _route(items, present, bus)

    assert len(results) == len(items)
    for (envelope, _), result in zip(items, results, strict=True):
        wanted = _wanted(envelope, present)
        took = wanted & alive
        assert result.gateways == took
        assert result.routed is bool(took)
        if not wanted:
            # Offline: pending, never an error (no retry for an offline user).
            assert not result.routed
            assert result.error is None
        elif not took:
            # Every gateway vanished: a transient error naming what was tried.
            assert result.error is not None
            for gateway in wanted:
                assert gateway in result.error
        else:
            assert result.error is None


@settings(max_examples=300)
@given(batches(), st.data())
def test_results_follow_each_hand_off_answer_in_input_order(
    batch: tuple[list[tuple[Envelope, int]], Presences], data: st.DataObject
) -> None:
    """Per-delivery answers (not per gateway): each item gets exactly its own answers."""
    items, present = batch
    expected_calls = sum(len(_wanted(envelope, present)) for envelope, _ in items)
    outcomes = data.draw(
        st.lists(st.sampled_from(Handoff), min_size=expected_calls, max_size=expected_calls)
    )
    bus = RouteBus(outcomes=outcomes)
    results = _route(items, present, bus)

    # One routing call for the whole batch, none when nobody is online.
    assert len(bus.calls) == (1 if expected_calls else 0)
    deliveries = bus.calls[0] if bus.calls else []
    assert len(deliveries) == expected_calls

    # Walk the deliveries: each names a gateway of its own item's recipient and
    # carries that item's message and attempt; items appear in input order.
    accepted_by_id: dict[str, set[str]] = {}
    full_by_id: dict[str, set[str]] = {}
    cursor = 0
    for envelope, attempt in items:
        wanted = _wanted(envelope, present)
        mine = deliveries[cursor : cursor + len(wanted)]
        answers = outcomes[cursor : cursor + len(wanted)]
        cursor += len(wanted)
        assert {gateway for gateway, _ in mine} == wanted
        for _, raw in mine:
            message = decode_routed(raw)
            assert (message.id, message.attempt) == (envelope.id, attempt)
            assert (message.tenant_id, message.user_id) == (envelope.tenant_id, envelope.user_id)
            assert message.content == envelope.content
        accepted_by_id[envelope.id] = {
            g for (g, _), answer in zip(mine, answers, strict=True) if answer is Handoff.TAKEN
        }
        full_by_id[envelope.id] = {
            g for (g, _), answer in zip(mine, answers, strict=True) if answer is Handoff.FULL
        }

    assert len(results) == len(items)
    for (envelope, _), result in zip(items, results, strict=True):
        took = accepted_by_id[envelope.id]
        full = full_by_id[envelope.id]
        assert result.gateways == took
        assert result.routed is bool(took)
        # A full stream fails the attempt (it is retried) even when another
        # gateway took it; otherwise only "nobody took it" fails.
        failed = bool(full) or (bool(_wanted(envelope, present)) and not took)
        assert (result.error is not None) is failed
        # Only a full stream is a refusal (deferred without spending an attempt).
        assert result.refused is bool(full)
        for gateway in full:
            assert result.error is not None
            assert gateway in result.error


@settings(max_examples=100)
@given(batches(), st.frozensets(st.sampled_from(GATEWAYS)))
def test_route_many_looks_up_each_recipient_once_then_routes_like_route_to(
    batch: tuple[list[tuple[Envelope, int]], Presences], alive: frozenset[str]
) -> None:
    items, present = batch
    presence = MapPresence(present)
    bus = RouteBus(alive=alive)
    router = Router(cast(Presence, presence), cast(DispatchBus, bus))

    async def main() -> list[RouteResult]:
        return await router.route_many(items)

    results = trio.run(main)
    assert len(presence.lookups) == 1
    wanted = {(envelope.tenant_id, envelope.user_id) for envelope, _ in items}
    assert sorted(presence.lookups[0]) == sorted(wanted)
    assert len(presence.lookups[0]) == len(wanted)  # one lookup per recipient
    assert results == _route(items, present, RouteBus(alive=alive))


def test_a_full_stream_fails_the_attempt_even_when_another_gateway_took_it() -> None:
    envelope = _envelope("tenant-a", "user-0", 0)
    present: Presences = {("tenant-a", "user-0"): frozenset({"gw-a", "gw-b"})}
    bus = RouteBus(outcomes=[Handoff.FULL, Handoff.TAKEN])  # deliveries go in gateway order
    (result,) = _route([(envelope, 1)], present, bus)
    assert result.gateways == frozenset({"gw-b"})
    assert result.error == "delivery stream full on gw-a"
    assert result.refused


def test_partial_hand_off_is_routed_to_the_gateways_that_took_it() -> None:
    envelope = _envelope("tenant-a", "user-0", 0)
    present: Presences = {("tenant-a", "user-0"): frozenset({"gw-a", "gw-b", "gw-c"})}
    (result,) = _route([(envelope, 1)], present, RouteBus(alive=frozenset({"gw-b"})))
    assert result == RouteResult(gateways=frozenset({"gw-b"}), error=None)
    assert result.routed


@settings(max_examples=300)
@given(batches(), st.frozensets(st.sampled_from(GATEWAYS)), st.data())
def test_gateways_that_took_it_before_are_not_sent_it_again(
    batch: tuple[list[tuple[Envelope, int]], Presences],
    alive: frozenset[str],
    data: st.DataObject,
) -> None:
    """A retry or a deferral routes only to the gateways that do not have it yet."""
    items, present = batch
    already = [data.draw(st.frozensets(st.sampled_from(GATEWAYS))) for _ in items]
    bus = RouteBus(alive=alive)
    router = Router(cast(Presence, MapPresence({})), cast(DispatchBus, bus))

    async def main() -> list[RouteResult]:
        return await router.route_to(items, present, already)

    results = trio.run(main)
    sent = [gateway for call in bus.calls for gateway, _ in call]
    cursor = 0
    for (envelope, _), had, result in zip(items, already, results, strict=True):
        wanted = _wanted(envelope, present)
        targets = wanted - had
        mine = sent[cursor : cursor + len(targets)]
        cursor += len(targets)
        assert set(mine) == targets  # never one of ``had``
        have = (targets & alive) | (had & wanted)
        assert result.gateways == have
        assert result.routed is bool(have)
        assert (result.error is not None) is bool(wanted and not have)
    assert cursor == len(sent)
