"""A listening gateway with the admin DLQ service, for the admin-route end-to-end tests.

Like :func:`tests.e2e.conftest.serve_gateway` (real hypercorn on a free
port, real Redis, SQLite storage) plus a :class:`ReplayService` on the
gateway, so ``/v1/admin/dlq`` and ``/v1/admin/dlq/replay`` are served. The
DLQ keys live under ``redis_prefix``; ``dlq_call_timeout_s`` bounds each of
the DLQ adapter's Redis calls (None: the adapter's default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from notifactor.actors.audit_trail import running_audit_trail
from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.adapters.redis_dlq import RedisDeadLetterQueue
from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.adapters.redis_ingest_pipeline import PipelinedIngest
from notifactor.auth.verify import build_verifier
from notifactor.config import AuditConfig, Config, TenantPolicy
from notifactor.dispatcher.replay import ReplayService
from notifactor.gateway import problems
from notifactor.gateway.app import GatewayApp
from notifactor.gateway.context import Gateway
from notifactor.gateway.server import run_http_server
from tests.e2e.conftest import GENEROUS, SECRET, RunningGateway
from tests.e2e.stores import open_test_store
from tests.e2e.ws_support import open_writer


@asynccontextmanager
async def serve_admin_gateway(
    redis_url: str,
    data_dir: Path,
    redis_prefix: str,
    *,
    tenants: Mapping[str, TenantPolicy] | None = None,
    dlq_call_timeout_s: float | None = None,
) -> AsyncIterator[RunningGateway]:
    """Run a gateway serving the admin DLQ routes until the block exits."""
    config = Config(
        jwt_secret=SECRET,
        http_port=0,
        data_dir=data_dir,
        shutdown_grace_s=2.0,
        tenants={"default": GENEROUS, **(tenants or {})},
        audit=AuditConfig(window_s=0.1),
    )
    settings = IngestSettings(
        stream_prefix=f"{redis_prefix}stream:", call_timeout_s=problems.REDIS_DEADLINE_S
    )
    async with (
        open_test_store(data_dir, None) as store,
        open_redis(redis_url) as redis,
        open_writer(store) as writer,
        running_audit_trail(writer, config.audit) as audit,
    ):
        bound = {} if dlq_call_timeout_s is None else {"call_timeout_s": dlq_call_timeout_s}
        dlq = RedisDeadLetterQueue(redis, keys=RedisKeys(prefix=redis_prefix), **bound)
        # The production ingest path: pipelined calls, bounded by the sender's watchdog.
        sender = PipelinedIngest(redis, RedisIngest(redis, settings))
        gateway = Gateway(
            config=config,
            verifier=build_verifier(config, hs256_secret=SECRET),
            ingest=sender,
            store=store,
            audit=audit,
            dlq=ReplayService(
                dlq,
                store,
                partitions=config.supervision.partitions,
                retention_days=lambda tenant: config.tenant_policy(tenant).retention_days,
            ),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(sender.run)
            port = await nursery.start(run_http_server, GatewayApp(gateway), config)
            yield RunningGateway(
                port=port, config=config, redis=redis, store=store, settings=settings
            )
            nursery.cancel_scope.cancel()
