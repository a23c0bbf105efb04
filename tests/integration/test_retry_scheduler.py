"""The retry set on a real Redis: restarts, two schedulers racing, the ``retrying`` state.

Failed attempts are acknowledged and put in ``retry:{p}`` in one ``MULTI``;
the retry scheduler moves due members back into ``stream:{p}`` with one Lua
script per call (``PROMOTE_LUA``: ``ZRANGEBYSCORE`` + ``XADD`` + ``ZREM``,
atomic), so a retry outlives the dispatcher that scheduled it and is moved
exactly once however many schedulers run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import coredis
import trio

from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_dispatch import (
    ATTEMPTS_FIELD,
    DEFAULT_GROUP,
    FIRST_ATTEMPT_FIELD,
    LAST_ERROR_FIELD,
)
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.envelope import ENVELOPE_FIELD, Envelope, decode_envelope
from notifactor.domain.partitioning import partition_for
from notifactor.domain.routing import decode_routed
from notifactor.ports.dispatch import DispatchBus
from notifactor.ports.presence import Presence
from tests.integration.dispatcher_harness import (
    FAST,
    Harness,
    dispatcher_config,
    make_envelope,
    open_store,
    pending_count,
    running_dispatcher,
)
from tests.integration.test_dispatcher_failures import FlakyPresence


class PausableBus:
    """The real bus; its retry scheduler moves nothing while ``paused`` is set.

    Counts what each ``promote_due_retries`` call moved, so a test can add up
    the promotions of every scheduler.
    """

    def __init__(self, inner: DispatchBus, *, paused: bool) -> None:
        self.inner = inner
        self.paused = paused
        self.moved: list[int] = []

    async def promote_due_retries(self, partition: int, *, now_ms: int, limit: int) -> int:
        if self.paused:
            return 0
        moved = await self.inner.promote_due_retries(partition, now_ms=now_ms, limit=limit)
        self.moved.append(moved)
        return moved

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class GhostPresence:
    """Presence that names a gateway that is not alive while ``haunted`` is set.

    Routing then finds every gateway of the recipient gone at the hand-off
    (the routing script re-checks liveness): a routing failure *after* the
    notification is stored.
    """

    ghost = "gw-ghost"

    def __init__(self, inner: Presence) -> None:
        self.inner = inner
        self.haunted = True

    async def gateways_for_many(
        self, recipients: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], frozenset[str]]:
        if self.haunted:
            return {recipient: frozenset({self.ghost}) for recipient in recipients}
        return await self.inner.gateways_for_many(recipients)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _retry_total(h: Harness) -> int:
    return sum([await h.redis.zcard(h.keys.retry(p)) for p in range(h.partitions)])


async def _wait_retry_total(h: Harness, count: int) -> None:
    with trio.fail_after(20):
        while True:
            if await _retry_total(h) == count:
                return
            await trio.sleep(0.02)


async def _wait_retrying(h: Harness, envelope: Envelope, timeout_s: float = 20) -> Any:
    """Poll storage until the notification reads ``retrying``; its view."""
    with trio.fail_after(timeout_s):
        while True:
            view = await h.store.get_notification(envelope.tenant_id, envelope.id)
            if view is not None and view.status is DeliveryState.RETRYING:
                return view
            await trio.sleep(0.02)


async def _routed_ids(h: Harness, gateway_id: str) -> list[tuple[str, int]]:
    """``(notification id, attempt)`` of every message in the gateway's stream."""
    return [(m.id, m.attempt) for m in map(decode_routed, await h.gateway_messages(gateway_id))]


async def test_a_scheduled_retry_survives_a_dispatcher_restart(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    config = dispatcher_config(max_attempts=4, base_ms=1_500, cap_ms=1_500)
    buses: list[PausableBus] = []

    def first(deps: Any) -> Any:
        # The first lookup fails; the scheduler of this dispatcher never moves
        # the retry, whatever delay the jitter drew, so it is still in the
        # set when the dispatcher stops.
        buses.append(PausableBus(deps.bus, paused=True))
        return attrs.evolve(deps, bus=buses[-1], presence=FlakyPresence(deps.presence, failures=1))

    envelope = make_envelope("tenant-a", "u-restart")
    async with open_store(tmp_path / "n.db") as store:
        async with running_dispatcher(
            redis_client, store, redis_prefix, config=config, wrap=first
        ) as h:
            partition = partition_for("tenant-a", "u-restart", h.partitions)
            await h.presence.register("tenant-a", "u-restart", "gw-1")
            await h.publish(envelope)
            await _wait_retry_total(h, 1)
            assert await redis_client.zcard(h.keys.retry(partition)) == 1
        # Stopped: the retry is in Redis only, the failed entry is acknowledged.
        assert await redis_client.zcard(h.keys.retry(partition)) == 1
        assert await pending_count(redis_client, h.keys.stream(partition), DEFAULT_GROUP) == 0
        assert await h.gateway_messages("gw-1") == []
        assert buses[0].moved == []

        async with running_dispatcher(redis_client, store, redis_prefix, config=config) as h:
            await h.wait_states([envelope], lambda s: s is DeliveryState.DELIVERED)
            view = await store.get_notification("tenant-a", envelope.id)
            assert view is not None
            assert view.attempts == 2
            assert await _routed_ids(h, "gw-1") == [(envelope.id, 2)]
            assert await redis_client.zcard(h.keys.retry(partition)) == 0


async def _seed_due_retries(h: Harness, envelopes: list[Envelope]) -> None:
    """Put each envelope in the retry set, due now, as a failed first attempt would.

    Each is published, read through the group by a consumer that then fails
    it: ``ack_and_retry_later`` acknowledges the real stream entry and
    schedules the retry in one ``MULTI``, exactly like the consumer's retry path.
    """
    for partition in range(h.partitions):
        await h.bus.ensure_group(partition)
    for envelope in envelopes:
        await h.publish(envelope)
    now_ms = int(time.time() * 1000)
    seeded = 0
    for partition in range(h.partitions):
        entries = await h.bus.read_new(partition, "seeder", count=1_000, block_ms=10)
        for entry in entries:
            fields = {
                ENVELOPE_FIELD: entry.fields[ENVELOPE_FIELD],
                ATTEMPTS_FIELD: b"1",
                FIRST_ATTEMPT_FIELD: str(now_ms).encode(),
                LAST_ERROR_FIELD: b"seeded failure",
            }
            await h.bus.ack_and_retry_later(partition, entry.id, due_ms=now_ms, fields=fields)
            seeded += 1
    assert seeded == len(envelopes)


async def test_two_schedulers_promote_each_due_retry_exactly_once(
    redis_client: coredis.Redis[bytes], redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    count = 30
    users = [f"u-{i}" for i in range(10)]
    envelopes = [make_envelope("tenant-a", users[i % len(users)]) for i in range(count)]
    # One retry per script call, so the two schedulers interleave call by call
    # on the same members; entries are never claimed by the other dispatcher
    # (each is processed in milliseconds) and nothing is trimmed after the
    # start, so the stream shows every promotion.
    settings = attrs.evolve(FAST, retry_batch=1, claim_idle_ms=30_000, maintenance_interval_s=3_600)
    buses: list[PausableBus] = []

    def paused(deps: Any) -> Any:
        buses.append(PausableBus(deps.bus, paused=True))
        return attrs.evolve(deps, bus=buses[-1])

    async with open_store(tmp_path / "n.db") as store:
        async with running_dispatcher(redis_client, store, redis_prefix, start=False) as seed:
            for user in users:
                await seed.presence.register("tenant-a", user, "gw-1")
            await _seed_due_retries(seed, envelopes)
            assert await _retry_total(seed) == count

        async with (
            open_redis(redis_url) as other_client,
            running_dispatcher(
                redis_client,
                store,
                redis_prefix,
                config=dispatcher_config(instance_id="dispatcher-a"),
                settings=settings,
                wrap=paused,
            ) as h,
            running_dispatcher(
                other_client,
                store,
                redis_prefix,
                config=dispatcher_config(instance_id="dispatcher-b"),
                settings=settings,
                wrap=paused,
            ),
        ):
            assert len(buses) == 2
            for bus in buses:  # both schedulers race for the same due members
                bus.paused = False
            await h.wait_states(envelopes, lambda s: s is DeliveryState.DELIVERED)
            await _wait_retry_total(h, 0)
            await trio.sleep(0.5)  # room for a duplicate to show up, if there were one

            # Every retry was moved once, by one scheduler or the other.
            assert sum(sum(bus.moved) for bus in buses) == count
            promoted: Counter[str] = Counter()
            for partition in range(h.partitions):
                for raw in await redis_client.xrange(h.keys.stream(partition)):
                    fields = raw.field_values
                    if ATTEMPTS_FIELD.encode() in fields:
                        promoted[decode_envelope(fields[ENVELOPE_FIELD.encode()]).id] += 1
            assert promoted == Counter({e.id: 1 for e in envelopes})
            # ... and so routed once, as attempt 2, and recorded with 2 attempts.
            routed = await _routed_ids(h, "gw-1")
            assert Counter(routed) == Counter({(e.id, 2): 1 for e in envelopes})
            for envelope in envelopes:
                view = await store.get_notification("tenant-a", envelope.id)
                assert view is not None
                assert view.attempts == 2
            for partition in range(h.partitions):
                stream = h.keys.stream(partition)
                assert await pending_count(redis_client, stream, DEFAULT_GROUP) == 0


async def test_retrying_is_observable_with_its_attempt_and_error_until_delivered(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    """A routing failure after storage records ``retrying`` (attempts 1, the error).

    The scheduler is held back until the test has seen ``retrying``, so the
    state is observed whatever delay the jitter drew; then the recipient's
    gateway is reachable again and the retry delivers it.
    """
    config = dispatcher_config(max_attempts=4, base_ms=200, cap_ms=200)
    buses: list[PausableBus] = []
    ghosts: list[GhostPresence] = []

    def wrap(deps: Any) -> Any:
        buses.append(PausableBus(deps.bus, paused=True))
        ghosts.append(GhostPresence(deps.presence))
        return attrs.evolve(deps, bus=buses[-1], presence=ghosts[-1])

    envelope = make_envelope("tenant-a", "u-retrying")
    async with (
        open_store(tmp_path / "n.db") as store,
        running_dispatcher(redis_client, store, redis_prefix, config=config, wrap=wrap) as h,
    ):
        await h.presence.register("tenant-a", "u-retrying", "gw-1")
        await h.publish(envelope)
        view = await _wait_retrying(h, envelope)
        assert view.attempts == 1
        assert view.last_error is not None
        assert GhostPresence.ghost in view.last_error
        assert await _retry_total(h) == 1
        assert await h.gateway_messages("gw-1") == []

        ghosts[0].haunted = False
        buses[0].paused = False
        await h.wait_states([envelope], lambda s: s is DeliveryState.DELIVERED)
        view = await store.get_notification("tenant-a", envelope.id)
        assert view is not None
        assert view.attempts == 2
        assert await _routed_ids(h, "gw-1") == [(envelope.id, 2)]
        await _wait_retry_total(h, 0)


async def test_retrying_after_a_failed_presence_lookup_when_the_edge_records_delivered(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    """The ``serve`` wiring (``mark_delivered_on_route=False``): lookup after storing.

    The presence lookup fails (a Redis error) after the notification is
    durable, so ``retrying`` is recorded with attempt 1 and the error; the
    retry then hands it to the gateway as attempt 2 (``delivered`` is the
    edge's to record in this wiring).
    """
    config = dispatcher_config(max_attempts=4, base_ms=200, cap_ms=200)
    settings = attrs.evolve(FAST, mark_delivered_on_route=False)
    buses: list[PausableBus] = []

    def wrap(deps: Any) -> Any:
        buses.append(PausableBus(deps.bus, paused=True))
        return attrs.evolve(deps, bus=buses[-1], presence=FlakyPresence(deps.presence, failures=1))

    envelope = make_envelope("tenant-a", "u-lookup")
    async with (
        open_store(tmp_path / "n.db") as store,
        running_dispatcher(
            redis_client, store, redis_prefix, config=config, settings=settings, wrap=wrap
        ) as h,
    ):
        await h.presence.register("tenant-a", "u-lookup", "gw-1")
        await h.publish(envelope)
        view = await _wait_retrying(h, envelope)
        assert view.attempts == 1
        assert "injected" in (view.last_error or "")
        assert await _retry_total(h) == 1

        buses[0].paused = False
        with trio.fail_after(20):
            while True:
                if await h.gateway_messages("gw-1"):
                    break
                await trio.sleep(0.02)
        assert await _routed_ids(h, "gw-1") == [(envelope.id, 2)]
        await _wait_retry_total(h, 0)


async def test_a_presence_lookup_failing_before_storage_leaves_no_orphan_status(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    """The default wiring looks presence up before storing the notification.

    When that lookup fails, the attempt fails before anything is stored: no
    ``retrying`` row may be written for a notification storage does not have
    (it would outrank the later states). The retry stores and delivers it.
    """
    config = dispatcher_config(max_attempts=4, base_ms=200, cap_ms=200)
    buses: list[PausableBus] = []

    def wrap(deps: Any) -> Any:
        bus = PausableBus(deps.bus, paused=True)
        buses.append(bus)
        return attrs.evolve(deps, bus=bus, presence=FlakyPresence(deps.presence, failures=1))

    envelope = make_envelope("tenant-a", "u-lookup")
    async with (
        open_store(tmp_path / "n.db") as store,
        running_dispatcher(redis_client, store, redis_prefix, config=config, wrap=wrap) as h,
    ):
        await h.publish(envelope)
        await _wait_retry_total(h, 1)  # the attempt failed and the retry is scheduled
        await h.writer.flush()
        assert await store.get_notification("tenant-a", envelope.id) is None
        buses[0].paused = False
        states = await h.wait_states([envelope], lambda s: s is DeliveryState.PENDING)
        assert states[envelope.id] is DeliveryState.PENDING
        view = await store.get_notification("tenant-a", envelope.id)
        assert view is not None
        assert view.attempts == 2
