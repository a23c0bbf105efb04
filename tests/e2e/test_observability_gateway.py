"""Metrics, traces, the tree endpoint and /health through a real listening gateway.

Real Redis, real SQLite, hypercorn on a free port; the ports are wrapped in
the instrumenting decorators exactly as ``bootstrap`` does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from notifactor.actors.audit_trail import running_audit_trail
from notifactor.adapters.redis_client import open_redis
from notifactor.adapters.redis_ingest import IngestSettings, RedisIngest
from notifactor.adapters.sqlite_store import SqliteNotificationStore
from notifactor.auth.tokens import mint_token
from notifactor.auth.verify import build_verifier
from notifactor.config import Config, TenantPolicy
from notifactor.config.model import ObservabilityConfig
from notifactor.domain.envelope import ENVELOPE_FIELD, decode_envelope, trace_id_of
from notifactor.domain.partitioning import partition_for
from notifactor.gateway.app import GatewayApp
from notifactor.gateway.context import Gateway
from notifactor.gateway.server import run_http_server
from notifactor.observability.instrumented import InstrumentedIngest, InstrumentedStore
from notifactor.observability.tracing import build_tracer_provider, use_tracer_provider
from notifactor.supervisors import NodeStatistics
from tests.e2e.ws_support import open_writer

from .conftest import GENEROUS, SECRET, notification

pytestmark = pytest.mark.e2e

TREE = NodeStatistics(
    id="root",
    kind="supervisor",
    state="running",
    strategy="rest_for_one",
    children=(NodeStatistics(id="http", kind="worker", state="running", restarts=2),),
)


@attrs.define
class Running:
    base_url: str
    redis: Any
    settings: IngestSettings
    tree: list[NodeStatistics | None]

    def auth(
        self, tenant: str, scopes: tuple[str, ...] = ("notifications:write",)
    ) -> dict[str, str]:
        token = mint_token(
            secret=SECRET,
            tenant_id=tenant,
            subject="user-1",
            scopes=scopes,
            ttl_s=600,
            now=int(time.time()),
        )
        return {"Authorization": f"Bearer {token}"}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=10.0)


@asynccontextmanager
async def instrumented_gateway(
    redis_url: str, data_dir: Path, **config_args: Any
) -> AsyncIterator[Running]:
    config = Config(
        jwt_secret=SECRET, http_port=0, data_dir=data_dir, shutdown_grace_s=2.0, **config_args
    )
    settings = IngestSettings(stream_prefix=f"test:{uuid.uuid4().hex[:12]}:stream:")
    raw_store = await SqliteNotificationStore.open(data_dir / "notifactor.db", lambda _t: 30)
    tree: list[NodeStatistics | None] = [TREE]

    async def supervision_check() -> None:
        node = tree[0]
        if node is not None:
            for path, each in node.walk():
                if each.state != "running":
                    raise RuntimeError(f"{'/'.join(path)} is {each.state}")

    try:
        async with (
            open_redis(redis_url) as redis,
            open_writer(raw_store) as writer,
            running_audit_trail(writer, config.audit) as audit,
        ):
            gateway = Gateway(
                config=config,
                verifier=build_verifier(config, hs256_secret=SECRET),
                ingest=InstrumentedIngest(RedisIngest(redis, settings)),
                store=InstrumentedStore(raw_store),
                audit=audit,
                supervision_check=supervision_check,
                supervision_snapshot=lambda: tree[0],
            )
            async with trio.open_nursery() as nursery:
                port = await nursery.start(run_http_server, GatewayApp(gateway), config)
                yield Running(f"http://127.0.0.1:{port}", redis, settings, tree)
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await raw_store.aclose()


def value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(Config(), SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        use_tracer_provider(None)
        provider.shutdown()


async def test_metrics_move_under_traffic(redis_url: str, tmp_path: Path, tenant: str) -> None:
    created = {"route": "notifications", "method": "POST", "status": "202"}
    latency = {"route": "notifications", "method": "POST"}
    before = {
        "requests": value("http_requests_total", created),
        "latency": value("http_request_duration_seconds_count", latency),
        "ingested": value("notifications_ingested_total"),
        "redis": value("redis_ingest_duration_seconds_count", {"outcome": "ok"}),
        "storage": value(
            "storage_operation_duration_seconds_count",
            {"operation": "get_notification", "outcome": "ok"},
        ),
        "not_found": value(
            "http_requests_total", {"route": "unknown", "method": "GET", "status": "404"}
        ),
    }
    async with instrumented_gateway(redis_url, tmp_path) as gw, gw.client() as client:
        headers = gw.auth(tenant, ("notifications:write", "notifications:read"))
        for _ in range(3):
            response = await client.post(
                "/v1/notifications", json=notification(tenant), headers=headers
            )
            assert response.status_code == 202
        ident = response.json()["id"]
        assert (await client.get(f"/v1/notifications/{ident}", headers=headers)).status_code == 200
        assert (await client.get("/no/such/path/12345")).status_code == 404
        scrape = (await client.get("/metrics")).text
    assert value("http_requests_total", created) == before["requests"] + 3
    assert value("http_request_duration_seconds_count", latency) == before["latency"] + 3
    assert value("notifications_ingested_total") == before["ingested"] + 3
    assert value("redis_ingest_duration_seconds_count", {"outcome": "ok"}) == before["redis"] + 3
    assert (
        value(
            "storage_operation_duration_seconds_count",
            {"operation": "get_notification", "outcome": "ok"},
        )
        == before["storage"] + 1
    )
    assert (
        value("http_requests_total", {"route": "unknown", "method": "GET", "status": "404"})
        == before["not_found"] + 1
    )
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "notifications_ingested_total",
        "redis_ingest_duration_seconds_bucket",
        "storage_operation_duration_seconds_bucket",
    ):
        assert f"\n{name}" in scrape
    # Route names, never raw paths with ids, are labels.
    assert ident not in scrape
    assert "/no/such/path" not in scrape


async def test_rate_limit_rejections_by_reason_and_bounded_tenant(
    redis_url: str, tmp_path: Path, tenant: str
) -> None:
    listed = f"listed-{uuid.uuid4().hex[:8]}"
    tight = TenantPolicy(rate_per_s=0.001, burst=1, daily_quota=0)
    async with (
        instrumented_gateway(
            redis_url,
            tmp_path,
            tenants={"default": GENEROUS, tenant: tight, listed: tight},
            observability=ObservabilityConfig(tenant_label_allowlist=(listed,)),
        ) as gw,
        gw.client() as client,
    ):
        before_other = value("rate_limit_rejections_total", {"reason": "rate", "tenant": "other"})
        before_listed = value("rate_limit_rejections_total", {"reason": "rate", "tenant": listed})
        for who in (tenant, listed):
            statuses = [
                (
                    await client.post(
                        "/v1/notifications", json=notification(who), headers=gw.auth(who)
                    )
                ).status_code
                for _ in range(3)
            ]
            assert statuses == [202, 429, 429]
    assert value("rate_limit_rejections_total", {"reason": "rate", "tenant": "other"}) == (
        before_other + 2
    )
    assert value("rate_limit_rejections_total", {"reason": "rate", "tenant": listed}) == (
        before_listed + 2
    )
    assert (
        REGISTRY.get_sample_value(
            "rate_limit_rejections_total", {"reason": "rate", "tenant": tenant}
        )
        is None
    )


async def test_the_envelope_carries_the_ingest_span(
    redis_url: str, tmp_path: Path, tenant: str, spans: InMemorySpanExporter
) -> None:
    client_trace = uuid.uuid4().hex
    incoming = f"00-{client_trace}-{uuid.uuid4().hex[:16]}-01"
    async with instrumented_gateway(redis_url, tmp_path) as gw, gw.client() as client:
        headers = {**gw.auth(tenant), "traceparent": incoming}
        response = await client.post(
            "/v1/notifications", json=notification(tenant), headers=headers
        )
        assert response.status_code == 202
        ident = response.json()["id"]
        partition = partition_for(tenant, "user-1", Config().supervision.partitions)
        entries = await gw.redis.xrange(gw.settings.stream(partition))
    (envelope,) = [
        e
        for e in (decode_envelope(x.field_values[ENVELOPE_FIELD.encode()]) for x in entries)
        if e.id == ident
    ]
    (span,) = [s for s in spans.get_finished_spans() if s.name == "gateway.ingest"]
    assert trace_id_of(envelope.traceparent) == client_trace
    assert format(span.context.trace_id, "032x") == client_trace
    assert envelope.traceparent.split("-")[2] == format(span.context.span_id, "016x")
    assert span.attributes is not None
    assert span.attributes["notifactor.notification_id"] == ident


async def test_tree_endpoint_access_rules(redis_url: str, tmp_path: Path, tenant: str) -> None:
    async with instrumented_gateway(redis_url, tmp_path) as gw, gw.client() as client:
        local = await client.get("/v1/admin/tree")
        assert local.status_code == 200
        assert local.json()["children"][0] == {
            "id": "http",
            "kind": "worker",
            "state": "running",
            "strategy": None,
            "restarts": 2,
            "max_children": None,
            "mailbox": None,
            "last_crash": None,
            "children": [],
        }
        not_admin = await client.get("/v1/admin/tree", headers=gw.auth(tenant))
        assert not_admin.status_code == 403
        bad = await client.get("/v1/admin/tree", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        # A tenant's admin scope is for its own tenant: the process-wide tree
        # is for the operator tenants only (none in this configuration).
        admin = await client.get("/v1/admin/tree", headers=gw.auth(tenant, ("admin",)))
        assert admin.status_code == 403
        assert "operator tenants" in admin.json()["detail"]
        gw.tree[0] = None
        assert (await client.get("/v1/admin/tree")).status_code == 503


async def test_tree_endpoint_without_loopback_exemption_needs_a_token(
    redis_url: str, tmp_path: Path
) -> None:
    async with (
        instrumented_gateway(
            redis_url,
            tmp_path,
            observability=ObservabilityConfig(tree_loopback_without_token=False),
        ) as gw,
        gw.client() as client,
    ):
        assert (await client.get("/v1/admin/tree")).status_code == 401


async def test_tree_endpoint_opens_to_operator_tenants_admins(
    redis_url: str, tmp_path: Path, tenant: str
) -> None:
    operators = ObservabilityConfig(
        tree_loopback_without_token=False, tree_operator_tenants=("ops",)
    )
    async with (
        instrumented_gateway(redis_url, tmp_path, observability=operators) as gw,
        gw.client() as client,
    ):
        operator = await client.get("/v1/admin/tree", headers=gw.auth("ops", ("admin",)))
        assert operator.status_code == 200
        assert operator.json()["children"][0]["id"] == "http"
        not_admin = await client.get("/v1/admin/tree", headers=gw.auth("ops"))
        assert not_admin.status_code == 403
        other = await client.get("/v1/admin/tree", headers=gw.auth(tenant, ("admin",)))
        assert other.status_code == 403


async def test_health_names_the_failing_node(redis_url: str, tmp_path: Path) -> None:
    async with instrumented_gateway(redis_url, tmp_path) as gw, gw.client() as client:
        assert (await client.get("/health")).status_code == 200
        gw.tree[0] = attrs.evolve(
            TREE, children=(attrs.evolve(TREE.children[0], state="restarting"),)
        )
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["supervision"]
    assert body["details"] == {"supervision": "root/http is restarting"}
