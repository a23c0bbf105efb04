"""Retries with backoff, exhausted retries, poison entries and a storage outage."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import coredis
import trio
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from notifactor.adapters.redis_dispatch import DEFAULT_GROUP
from notifactor.config import Config
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.dlq_entry import decode_dlq_entry
from notifactor.domain.envelope import decode_envelope, trace_id_of
from notifactor.domain.notification import DeliveryUpdate, Notification
from notifactor.domain.partitioning import partition_for
from notifactor.observability.tracing import build_tracer_provider, use_tracer_provider
from notifactor.ports.notification_store import NotificationStore, TransientStoreError
from notifactor.ports.presence import Presence
from tests.integration.dispatcher_harness import (
    FAST,
    dispatcher_config,
    make_envelope,
    open_store,
    pending_count,
    running_dispatcher,
)


class FlakyPresence:
    """Presence whose lookups fail (as a Redis error would) while ``failures`` > 0."""

    def __init__(self, inner: Presence, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.calls: list[float] = []

    async def gateways_for(self, tenant_id: str, user_id: str) -> frozenset[str]:
        self.calls.append(trio.current_time())
        if self.failures != 0:
            self.failures -= 1
            raise ConnectionError("presence lookup failed (injected)")
        return await self.inner.gateways_for(tenant_id, user_id)

    async def gateways_for_many(
        self, recipients: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], frozenset[str]]:
        self.calls.append(trio.current_time())
        if self.failures != 0:
            self.failures -= 1
            raise ConnectionError("presence lookup failed (injected)")
        return await self.inner.gateways_for_many(recipients)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class OutageStore:
    """The real store, unavailable (TransientStoreError) while ``down`` is set."""

    def __init__(self, inner: NotificationStore) -> None:
        self.inner = inner
        self.down = False
        self.refused = 0

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise TransientStoreError("database is locked (injected outage)")

    async def save_notifications(self, notifications: Sequence[Notification]) -> None:
        self._check()
        await self.inner.save_notifications(notifications)

    async def apply_delivery_updates(self, updates: Sequence[DeliveryUpdate]) -> None:
        self._check()
        await self.inner.apply_delivery_updates(updates)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_transient_failures_retry_with_backoff_then_succeed(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    flaky: list[FlakyPresence] = []

    def wrap(deps: Any) -> Any:
        flaky.append(FlakyPresence(deps.presence, failures=2))
        return attrs.evolve(deps, presence=flaky[0])

    retries_before = _sample("retry_attempts_total")
    config = dispatcher_config(max_attempts=5, base_ms=100, cap_ms=400)
    async with (
        open_store(tmp_path / "n.db") as store,
        running_dispatcher(redis_client, store, redis_prefix, config=config, wrap=wrap) as h,
    ):
        await h.presence.register("tenant-a", "u1", "gw-1")
        envelope = make_envelope("tenant-a", "u1")
        await h.publish(envelope)
        await h.wait_states([envelope], lambda s: s is DeliveryState.DELIVERED)
        view = await store.get_notification("tenant-a", envelope.id)
        assert view is not None
        assert view.attempts == 3
        routed = await h.gateway_messages("gw-1")
        assert len(routed) == 1
        assert _sample("retry_attempts_total") - retries_before == 2
        # The scheduled retries left nothing behind.
        partition = partition_for("tenant-a", "u1", h.partitions)
        assert await redis_client.zcard(h.keys.retry(partition)) == 0
        # Backoff within the full-jitter bounds (plus polling slack).
        calls = flaky[0].calls
        assert len(calls) == 3
        assert calls[1] - calls[0] <= 0.1 + 0.5
        assert calls[2] - calls[1] <= 0.2 + 0.5


async def test_exhausted_retries_go_to_the_dlq_with_every_field(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="notifactor.actors.partition_consumer")

    def wrap(deps: Any) -> Any:
        return attrs.evolve(deps, presence=FlakyPresence(deps.presence, failures=-1))

    dead_before = _sample("dlq_events_total", {"reason": "exhausted"})
    config = dispatcher_config(max_attempts=3, base_ms=10, cap_ms=50)
    async with (
        open_store(tmp_path / "n.db") as store,
        running_dispatcher(redis_client, store, redis_prefix, config=config, wrap=wrap) as h,
    ):
        envelope = make_envelope("tenant-a", "u9")
        await h.publish(envelope)
        await h.wait_states([envelope], lambda s: s is DeliveryState.DEAD)
        entries = await h.wait_dlq_entries(1)
        assert len(entries) == 1
        entry = decode_dlq_entry(entries[0]["entry"])
        assert decode_envelope(entries[0]["envelope"]) == envelope
        assert entry.reason == "exhausted"
        assert entry.notification_id == envelope.id
        assert entry.tenant_id == "tenant-a"
        assert entry.attempts == 3
        assert "injected" in entry.last_error
        assert entry.first_attempt_at <= entry.last_attempt_at
        assert entry.trace_id == trace_id_of(envelope.traceparent)
        view = await store.get_notification("tenant-a", envelope.id)
        assert view is not None
        assert view.attempts == 3
        assert "injected" in (view.last_error or "")
        letters = await store.list_dead_letters("tenant-a")
        assert [d.notification_id for d in letters.items] == [envelope.id]
        assert _sample("dlq_events_total", {"reason": "exhausted"}) - dead_before == 1
    # The retries and the dead letter are logged with the notification's context.
    about = [r for r in caplog.records if getattr(r, "notification_id", None) == envelope.id]
    retries = [r for r in about if "retrying in" in r.getMessage()]
    dead = [r for r in about if getattr(r, "event", None) == "dead_letter"]
    assert len(retries) == 2
    assert len(dead) == 1
    for record in about:
        assert record.tenant_id == "tenant-a"  # type: ignore[attr-defined]
        assert record.trace_id == trace_id_of(envelope.traceparent)  # type: ignore[attr-defined]
        assert envelope.content not in record.getMessage()


async def test_entry_delivered_too_often_is_dead_lettered_as_poison(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    async with open_store(tmp_path / "n.db") as store:
        async with running_dispatcher(redis_client, store, redis_prefix, start=False) as h:
            envelope = make_envelope("tenant-a", "u-poison")
            healthy = make_envelope("tenant-a", "u-poison")
            stream = h.keys.stream(partition_for("tenant-a", "u-poison", h.partitions))
            await h.bus.ensure_group(partition_for("tenant-a", "u-poison", h.partitions))
            await h.publish(envelope)
            # A consumer that takes the entry and crashes, again and again.
            reply = await redis_client.xreadgroup(DEFAULT_GROUP, "ghost", streams={stream: ">"})
            assert reply
            entry_id = next(iter(reply.values()))[0].identifier
            for _ in range(3):
                await redis_client.xclaim(stream, DEFAULT_GROUP, "ghost", 0, [entry_id])
            await h.publish(healthy)
        async with running_dispatcher(redis_client, store, redis_prefix) as h:
            await h.wait_states([envelope], lambda s: s is DeliveryState.DEAD)
            await h.wait_states([healthy], lambda s: s is DeliveryState.PENDING)
            (dead,) = [decode_dlq_entry(e["entry"]) for e in await h.wait_dlq_entries(1)]
            assert dead.reason == "poison"
            assert dead.notification_id == envelope.id
            assert await pending_count(redis_client, stream, DEFAULT_GROUP) == 0


async def test_storage_outage_then_recovery_loses_nothing(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    config = dispatcher_config(max_attempts=20, base_ms=50, cap_ms=300)
    async with open_store(tmp_path / "n.db") as real:
        store = OutageStore(real)
        async with running_dispatcher(redis_client, store, redis_prefix, config=config) as h:
            await h.presence.register("tenant-a", "online", "gw-1")
            before = [make_envelope("tenant-a", "online") for _ in range(5)]
            for envelope in before:
                await h.publish(envelope)
            await h.wait_states(before, lambda s: s is DeliveryState.DELIVERED)
            store.down = True
            during = [make_envelope("tenant-a", "online") for _ in range(10)]
            during += [make_envelope("tenant-a", f"offline-{i}") for i in range(10)]
            for envelope in during:
                await h.publish(envelope)
            with trio.fail_after(10):
                while True:
                    if store.refused >= 5:
                        break
                    await trio.sleep(0.05)
            await trio.sleep(1.5)  # the outage lasts a while
            store.down = False
            await h.wait_states(during[:10], lambda s: s is DeliveryState.DELIVERED)
            await h.wait_states(during[10:], lambda s: s is DeliveryState.PENDING)
            assert await h.dlq_entries() == []
            ids = list(await h.gateway_messages("gw-1"))
            assert len(ids) >= 15  # at least once; retries after timeouts may repeat


async def test_exhausted_during_a_long_outage_is_dead_lettered_as_exhausted_not_poison(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    """Attempts run out while storage is down, and the ``dead`` record cannot be written.

    The outage outlasts several claim cycles (``claim_idle_ms`` 1.5 s,
    ``max_deliveries`` 3): an entry left pending would be claimed past
    ``max_deliveries`` and end as ``poison``. Deferred through the retry set,
    it is dead-lettered once, as ``exhausted``, when storage is back.
    """
    config = dispatcher_config(max_attempts=2, base_ms=20, cap_ms=300)
    async with open_store(tmp_path / "n.db") as real:
        store = OutageStore(real)
        store.down = True
        # An attempt and its dead letter give up well within claim_idle_ms, so
        # no claim races the consumer that is still working on the entry.
        settings = attrs.evolve(FAST, attempt_timeout_s=0.5, dead_letter_timeout_s=0.5)
        async with running_dispatcher(
            redis_client, store, redis_prefix, config=config, settings=settings
        ) as h:
            envelope = make_envelope("tenant-a", "offline")
            await h.publish(envelope)
            await trio.sleep(6.0)  # four claim cycles' worth of outage
            assert await h.dlq_entries() == []
            store.down = False
            await h.wait_states([envelope], lambda s: s is DeliveryState.DEAD)
            (dead,) = [decode_dlq_entry(e["entry"]) for e in await h.wait_dlq_entries(1)]
            assert dead.reason == "exhausted"
            assert dead.attempts == 2
            assert dead.notification_id == envelope.id
            assert dead.last_error
            assert dead.first_attempt_at <= dead.last_attempt_at
            stream = h.keys.stream(partition_for("tenant-a", "offline", 4))
            assert await pending_count(redis_client, stream, DEFAULT_GROUP) == 0
            await trio.sleep(1.0)
            assert len(await h.dlq_entries()) == 1  # dead-lettered once


async def test_a_retried_notification_stays_in_one_trace_with_a_retry_span(
    redis_client: coredis.Redis[bytes], redis_prefix: str, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(Config(), SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)

    def wrap(deps: Any) -> Any:
        return attrs.evolve(deps, presence=FlakyPresence(deps.presence, failures=1))

    try:
        config = dispatcher_config(max_attempts=4, base_ms=10, cap_ms=50)
        async with (
            open_store(tmp_path / "n.db") as store,
            running_dispatcher(redis_client, store, redis_prefix, config=config, wrap=wrap) as h,
        ):
            envelope = make_envelope("tenant-a", "offline-traced")
            await h.publish(envelope)
            await h.wait_states([envelope], lambda s: s is DeliveryState.PENDING)
    finally:
        use_tracer_provider(None)
        provider.shutdown()
    trace_id = trace_id_of(envelope.traceparent)
    mine = [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]
    names = [s.name for s in mine]
    assert names.count("dispatch.consume") == 2  # the failed attempt and the retry
    (retry,) = [s for s in mine if s.name == "dispatch.retry"]
    assert retry.attributes is not None
    assert retry.attributes["notifactor.decision"] == "retry"
    assert retry.attributes["notifactor.attempt"] == 1
    assert "injected" in str(retry.attributes["notifactor.error"])
    first_consume = next(
        s for s in mine if s.name == "dispatch.consume" and s.attributes["notifactor.attempt"] == 1
    )
    assert retry.parent is not None
    assert retry.parent.span_id == first_consume.context.span_id
