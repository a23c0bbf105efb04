"""A real gateway for end-to-end tests: hypercorn on a free port, real Redis, real storage.

``serve_gateway`` starts one with the given tenant policies and ingest
settings, on SQLite unless given a Cassandra keyspace; the ``gateway``
fixture is one with generous defaults, run once on each store (SQLite and a
real Cassandra), so every status code and header is checked on both. Each
test gets its own tenant ids (``tenant``), so rate limits, idempotency keys
and stored rows of different tests never meet.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import coredis
import httpx
import pytest
import trio

from infra.local.cassandra_server import CassandraContact
from notifactor.actors.audit_trail import running_audit_trail
from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.auth.tokens import DEFAULT_SCOPES, mint_token
from notifactor.auth.verify import build_verifier
from notifactor.config import AuditConfig, Config, TenantPolicy
from notifactor.gateway.app import GatewayApp
from notifactor.gateway.context import Gateway
from notifactor.gateway.server import run_http_server
from notifactor.ports.notification_store import NotificationStore
from tests.cassandra_keyspaces import migrated_keyspace as keyspace_with_schema
from tests.e2e.stores import Storage, open_test_store
from tests.e2e.ws_support import open_writer

SECRET = "e2e-secret-" + "s" * 40
GENEROUS = TenantPolicy(rate_per_s=100_000, burst=100_000, daily_quota=0)


@attrs.define
class RunningGateway:
    """A listening gateway and handles to what it talks to."""

    port: int
    config: Config
    redis: coredis.Redis[bytes]
    store: NotificationStore
    settings: IngestSettings

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(
        self,
        tenant_id: str,
        subject: str = "user-1",
        scopes: tuple[str, ...] = (*DEFAULT_SCOPES,),
        ttl_s: int = 3600,
        now: int | None = None,
    ) -> str:
        return mint_token(
            secret=SECRET,
            tenant_id=tenant_id,
            subject=subject,
            scopes=scopes,
            ttl_s=ttl_s,
            now=int(time.time()) if now is None else now,
        )

    def auth(self, tenant_id: str, subject: str = "user-1", **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(tenant_id, subject, **kwargs)}"}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=10.0)


@asynccontextmanager
async def serve_gateway(
    redis_url: str,
    data_dir: Path,
    *,
    tenants: Mapping[str, TenantPolicy] | None = None,
    settings: IngestSettings | None = None,
    supervision_check: Callable[[], Awaitable[None]] | None = None,
    cassandra: tuple[CassandraContact, str] | None = None,
) -> AsyncIterator[RunningGateway]:
    """Run a gateway until the block exits (then shut it down gracefully).

    Args:
        cassandra: a contact point and a migrated keyspace to store in;
            None stores in SQLite under ``data_dir``.
    """
    config = Config(
        jwt_secret=SECRET,
        http_port=0,
        data_dir=data_dir,
        shutdown_grace_s=2.0,
        tenants={"default": GENEROUS, **(tenants or {})},
        audit=AuditConfig(window_s=0.1),
    )
    settings = settings or IngestSettings(stream_prefix=f"test:{uuid.uuid4().hex[:12]}:stream:")
    async with (
        open_test_store(data_dir, cassandra) as store,
        open_redis(redis_url) as redis,
        open_writer(store) as writer,
        running_audit_trail(writer, config.audit) as audit,
    ):
        extra: dict[str, Any] = {}
        if supervision_check is not None:
            extra["supervision_check"] = supervision_check
        gateway = Gateway(
            config=config,
            verifier=build_verifier(config, hs256_secret=SECRET),
            ingest=RedisIngest(redis, settings),
            store=store,
            audit=audit,
            **extra,
        )
        async with trio.open_nursery() as nursery:
            port = await nursery.start(run_http_server, GatewayApp(gateway), config)
            yield RunningGateway(
                port=port, config=config, redis=redis, store=store, settings=settings
            )
            nursery.cancel_scope.cancel()


@pytest.fixture(scope="session")
def gateway_keyspace(request: pytest.FixtureRequest) -> Iterator[tuple[CassandraContact, str]]:
    """A keyspace migrated once for the gateway tests on Cassandra (only when one runs)."""
    contact: CassandraContact = request.getfixturevalue("cassandra_contact")
    with keyspace_with_schema(contact, "gateway") as keyspace:
        yield contact, keyspace


@pytest.fixture(params=["sqlite", "cassandra"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """Which store the ``gateway`` fixture uses; sync, so Cassandra is set up outside Trio."""
    if request.param == "sqlite":
        return None
    keyspace: tuple[CassandraContact, str] = request.getfixturevalue("gateway_keyspace")
    return keyspace


@pytest.fixture
async def gateway(
    redis_url: str, tmp_path: Path, storage: tuple[CassandraContact, str] | None
) -> AsyncIterator[RunningGateway]:
    async with serve_gateway(redis_url, tmp_path, cassandra=storage) as running:
        yield running


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def other_tenant() -> str:
    return f"other-{uuid.uuid4().hex[:10]}"


def notification(tenant_id: str, user_id: str = "user-1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "channel": "alerts",
        "content": "Deployment completed",
        "priority": "normal",
        "metadata": {"build": 42},
    }
    body.update(overrides)
    return body
