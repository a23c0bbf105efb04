"""Running the dispatcher: its supervision subtree, for ``dispatcher`` and ``serve``.

The subtree (``[supervision.dispatcher]``, whose strategy can only be ``rest_for_one``)::

    dispatcher
    ├── consumers          DynamicSupervisor ([supervision.consumers])
    │   ├── consumer-0     PartitionConsumer, one per partition
    │   └── ...
    ├── partition-assigner starts consumer-0..N-1 in the pool, then idles
    └── retry-scheduler    RetryScheduler

``rest_for_one``: when the pool restarts (and comes back empty), the assigner
after it restarts too and fills it again.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

import attrs
import coredis
import trio

from notifactor.actors.partition_consumer import PartitionConsumer
from notifactor.actors.retry_scheduler import RetryScheduler
from notifactor.actors.router import Router
from notifactor.actors.stop import optional_stop_signal
from notifactor.actors.storage_writer import StorageWriterClient
from notifactor.adapters.redis_dispatch import RedisDispatchBus, RedisKeys
from notifactor.adapters.redis_presence import RedisPresence
from notifactor.config import Config
from notifactor.dispatcher.settings import DispatcherSettings, retry_policy_for
from notifactor.domain.retry_schedule import RetryPolicy
from notifactor.ports.dispatch import DispatchBus
from notifactor.ports.presence import Presence
from notifactor.supervisors import (
    ChildSpec,
    DynamicSupervisor,
    Supervisor,
    dynamic_supervisor_from_config,
    supervisor_from_config,
)


@attrs.frozen(kw_only=True)
class DispatcherDeps:
    """Everything the dispatcher subtree talks to."""

    bus: DispatchBus
    presence: Presence
    writer: StorageWriterClient
    policy_for: Callable[[str], RetryPolicy]
    partitions: int
    consumer_name: str
    settings: DispatcherSettings = attrs.field(factory=DispatcherSettings)


def consumer_spec(deps: DispatcherDeps, partition: int, router: Router) -> ChildSpec:
    """The child spec of the consumer of ``partition`` (a fresh consumer per start)."""

    async def start(*, task_status: trio.TaskStatus[None]) -> None:
        consumer = PartitionConsumer(
            partition=partition,
            consumer=deps.consumer_name,
            bus=deps.bus,
            router=router,
            writer=deps.writer,
            policy_for=deps.policy_for,
            settings=deps.settings,
            rng=random.Random(),
        )
        await consumer.run(task_status=task_status)

    return ChildSpec(id=f"consumer-{partition}", start=start)


async def _assign_partitions(
    deps: DispatcherDeps,
    pool: DynamicSupervisor,
    router: Router,
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    for partition in range(deps.partitions):
        child_id = f"consumer-{partition}"
        if child_id not in pool:
            await pool.start_child(consumer_spec(deps, partition, router))
    task_status.started()
    stop = optional_stop_signal()
    if stop is not None:
        await stop.wait()
    else:
        await trio.sleep_forever()


def build_dispatcher(config: Config, deps: DispatcherDeps) -> Supervisor:
    """The dispatcher subtree for ``deps``, tuned by ``config.supervision``."""
    supervision = config.supervision
    pool = dynamic_supervisor_from_config("consumers", supervision.consumers)
    router = Router(deps.presence, deps.bus)
    scheduler = RetryScheduler(
        deps.bus,
        partitions=deps.partitions,
        poll_s=deps.settings.retry_poll_s,
        batch=deps.settings.retry_batch,
    )
    children = [
        pool.child_spec(),
        ChildSpec(
            id="partition-assigner",
            start=functools.partial(_assign_partitions, deps, pool, router),
        ),
        ChildSpec(id="retry-scheduler", start=scheduler.run),
    ]
    return supervisor_from_config("dispatcher", supervision.dispatcher, children)


def redis_deps(
    config: Config,
    redis: coredis.Redis[bytes],
    writer: StorageWriterClient,
    *,
    settings: DispatcherSettings | None = None,
    keys: RedisKeys | None = None,
) -> DispatcherDeps:
    """The production wiring: Redis bus and presence, the config's tenant policies."""
    keys = keys or RedisKeys()
    return DispatcherDeps(
        bus=RedisDispatchBus(
            redis,
            keys=keys,
            gateway_stream_maxlen=config.dispatcher.delivery_stream_max_entries,
            dlq_maxlen=config.dispatcher.dlq_max_entries,
        ),
        presence=RedisPresence(redis, keys=keys),
        writer=writer,
        policy_for=retry_policy_for(config),
        partitions=config.supervision.partitions,
        consumer_name=config.instance_id,
        settings=settings or DispatcherSettings(),
    )


async def run_dispatcher(
    config: Config,
    redis: coredis.Redis[bytes],
    writer: StorageWriterClient,
    *,
    settings: DispatcherSettings | None = None,
    keys: RedisKeys | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the dispatcher subtree until stopped; a start function for the root supervisor.

    Args:
        config: process configuration (partitions, instance id, tenant
            policies, ``[supervision.dispatcher]`` and ``[supervision.consumers]``).
        redis: an entered client whose pool holds at least ``partitions`` + 8
            connections (each consumer blocks on one).
        writer: the storage writer's client (the ``writers`` subtree).
        settings: dispatcher timings; defaults suit production.
        keys: Redis key names; tests pass a prefix.
    """
    supervisor = build_dispatcher(
        config, redis_deps(config, redis, writer, settings=settings, keys=keys)
    )
    await supervisor.run(task_status=task_status)
