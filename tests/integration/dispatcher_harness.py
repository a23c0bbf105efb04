"""A dispatcher on the real test Redis and a real SQLite store, for integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import coredis
import trio
from coredis.response.types import StreamPending

from notifactor.actors import ActorRef, run_actor
from notifactor.actors.storage_writer import (
    StorageWriter,
    StorageWriterClient,
    StorageWriterConfig,
    WriterMessage,
    kind_only,
)
from notifactor.adapters.redis_dispatch import RedisDispatchBus, RedisKeys
from notifactor.adapters.redis_presence import RedisPresence
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.config import Config, TenantPolicy
from notifactor.dispatcher.runner import DispatcherDeps, build_dispatcher, redis_deps
from notifactor.dispatcher.settings import DispatcherSettings
from notifactor.domain.delivery_state import DeliveryState
from notifactor.domain.dlq_entry import DLQ_ENTRY_FIELD, DlqEntry, encode_dlq_entry
from notifactor.domain.envelope import ENVELOPE_FIELD, Envelope, encode_envelope, new_traceparent
from notifactor.domain.ids import new_notification_id
from notifactor.domain.partitioning import partition_for
from notifactor.ports.notification_store import NotificationStore
from notifactor.supervisors import SupervisionConfig

FAST = DispatcherSettings(
    read_count=32,
    block_ms=100,
    claim_idle_ms=1_500,
    claim_interval_s=0.2,
    max_deliveries=3,
    attempt_timeout_s=1.0,
    dead_letter_timeout_s=1.0,
    maintenance_interval_s=0.5,
    stale_consumer_idle_ms=60_000,
    retry_poll_s=0.05,
)


def dispatcher_config(
    *,
    partitions: int = 4,
    instance_id: str = "dispatcher-a",
    max_attempts: int = 4,
    base_ms: int = 20,
    cap_ms: int = 200,
) -> Config:
    policy = TenantPolicy(max_attempts=max_attempts, retry_base_ms=base_ms, retry_cap_ms=cap_ms)
    return Config(
        instance_id=instance_id,
        tenants={"default": policy},
        supervision=SupervisionConfig(partitions=partitions),
    )


async def append_dead_letter(
    redis: coredis.Redis[bytes],
    dlq_key: str,
    envelope: Envelope,
    *,
    dead_at: datetime | None = None,
    first_attempt_at: datetime | None = None,
    last_error: str = "unreachable",
) -> None:
    """Append ``envelope`` to the DLQ stream as an ``exhausted`` dead letter (3 attempts).

    It died at ``dead_at`` (now by default), first tried at ``first_attempt_at``
    (``dead_at`` by default).
    """
    now = dead_at or datetime.now(UTC)
    entry = DlqEntry(
        reason="exhausted",
        notification_id=envelope.id,
        tenant_id=envelope.tenant_id,
        user_id=envelope.user_id,
        channel=envelope.channel,
        attempts=3,
        last_error=last_error,
        first_attempt_at=first_attempt_at or now,
        last_attempt_at=now,
        trace_id=None,
        source_stream="s",
        source_id="1-0",
        dead_at=now,
    )
    fields: dict[str | bytes, Any] = {
        DLQ_ENTRY_FIELD: encode_dlq_entry(entry),
        ENVELOPE_FIELD: encode_envelope(envelope),
    }
    await redis.xadd(dlq_key, fields)


def make_envelope(tenant_id: str = "tenant-a", user_id: str = "user-1", **kw: Any) -> Envelope:
    return Envelope(
        id=new_notification_id(),
        tenant_id=tenant_id,
        user_id=user_id,
        channel=kw.pop("channel", "alerts"),
        content=kw.pop("content", "hello"),
        accepted_at=datetime.now(UTC),
        traceparent=new_traceparent(),
        **kw,
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


async def pending_count(redis: coredis.Redis[bytes], stream: str, group: str) -> int:
    """Entries of ``stream`` delivered to ``group`` and not acknowledged."""
    summary = await redis.xpending(stream, group)
    assert isinstance(summary, StreamPending)
    return int(summary.pending)


async def pending_by_consumer(
    redis: coredis.Redis[bytes], stream: str, group: str
) -> dict[bytes, int]:
    summary = await redis.xpending(stream, group)
    assert isinstance(summary, StreamPending)
    return {_raw(name): int(count) for name, count in summary.consumers.items()}


@attrs.define
class Harness:
    redis: coredis.Redis[bytes]
    store: NotificationStore
    keys: RedisKeys
    config: Config
    bus: RedisDispatchBus
    presence: RedisPresence
    writer: StorageWriterClient

    @property
    def partitions(self) -> int:
        return self.config.supervision.partitions

    async def publish(self, envelope: Envelope) -> str:
        partition = partition_for(envelope.tenant_id, envelope.user_id, self.partitions)
        entry_id = await self.redis.xadd(
            self.keys.stream(partition), {ENVELOPE_FIELD: encode_envelope(envelope)}
        )
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def publish_raw(self, partition: int, fields: dict[str, bytes]) -> None:
        await self.redis.xadd(self.keys.stream(partition), dict(fields))

    async def state_of(self, envelope: Envelope) -> DeliveryState | None:
        view = await self.store.get_notification(envelope.tenant_id, envelope.id)
        return None if view is None else view.status

    async def wait_states(
        self,
        envelopes: Iterable[Envelope],
        accept: Callable[[DeliveryState | None], bool],
    ) -> dict[str, DeliveryState | None]:
        """Poll storage until every state is accepted (60 s at most)."""
        envelopes = list(envelopes)
        states: dict[str, DeliveryState | None] = {}
        with trio.fail_after(60):
            while True:
                states = {e.id: await self.state_of(e) for e in envelopes}
                if all(accept(s) for s in states.values()):
                    return states
                await trio.sleep(0.05)

    async def dlq_entries(self) -> list[dict[str, bytes]]:
        raw = await self.redis.xrange(self.keys.dlq)
        return [{_text(k): _raw(v) for k, v in e.field_values.items()} for e in raw]

    async def wait_dlq_entries(self, count: int) -> list[dict[str, bytes]]:
        """Poll the DLQ stream until it holds ``count`` entries (60 s at most).

        ``dead`` is stored before the DLQ entry is appended, so a test that saw
        the state must still wait for the entry.
        """
        with trio.fail_after(60):
            while True:
                entries = await self.dlq_entries()
                if len(entries) >= count:
                    return entries
                await trio.sleep(0.02)

    async def gateway_messages(self, gateway_id: str) -> list[bytes]:
        raw = await self.redis.xrange(self.keys.gateway_stream(gateway_id))
        return [_raw(e.field_values[b"message"]) for e in raw]


@asynccontextmanager
async def open_store(path: Path) -> AsyncIterator[SqliteNotificationStore]:
    store = await SqliteNotificationStore.open(path, lambda _tenant: 30)
    try:
        yield store
    finally:
        await store.aclose()


@asynccontextmanager
async def writer_for(store: NotificationStore) -> AsyncIterator[StorageWriterClient]:
    ref: ActorRef[WriterMessage] = ActorRef("writer", mailbox_size=1024)
    async with trio.open_nursery() as nursery:
        config = StorageWriterConfig(flush_timeout_s=5.0)
        await nursery.start(
            run_actor, ref, lambda: StorageWriter(store, config, partition_key=kind_only)
        )
        yield StorageWriterClient(ref)
        nursery.cancel_scope.cancel()  # the writer flushes what it holds, shielded


@asynccontextmanager
async def running_dispatcher(
    redis: coredis.Redis[bytes],
    store: NotificationStore,
    prefix: str,
    *,
    config: Config | None = None,
    settings: DispatcherSettings = FAST,
    start: bool = True,
    wrap: Callable[[DispatcherDeps], DispatcherDeps] | None = None,
) -> AsyncIterator[Harness]:
    config = config or dispatcher_config()
    keys = RedisKeys(prefix=prefix)
    async with writer_for(store) as writer:
        deps = redis_deps(config, redis, writer, settings=settings, keys=keys)
        assert isinstance(deps.bus, RedisDispatchBus)
        assert isinstance(deps.presence, RedisPresence)
        harness = Harness(
            redis=redis,
            store=store,
            keys=keys,
            config=config,
            bus=deps.bus,
            presence=deps.presence,
            writer=writer,
        )
        if not start:
            yield harness
            return
        supervisor = build_dispatcher(config, wrap(deps) if wrap else deps)
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            yield harness
            supervisor.request_stop()
