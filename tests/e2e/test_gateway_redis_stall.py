"""Redis down or stalled: the routes that need it answer 503 with ``Retry-After``, in bounded time.

Each test runs its own Redis-compatible server, so stopping it (or pausing it
with SIGSTOP) affects nobody else; a paused server is always continued.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from infra.local.redis_server import LocalRedis
from notifactor.adapters.redis_client import open_redis
from notifactor.domain.ids import new_notification_id
from notifactor.gateway import problems
from tests.e2e.admin_gateway import serve_admin_gateway
from tests.e2e.conftest import RunningGateway, notification

ADMIN_SCOPES = ("admin", "notifications:read", "notifications:write")
#: The bounds the gateway under test uses (small, so the tests are quick).
DEADLINE_S = 0.5
#: What the tests allow a refused request, deadline included (generous for a busy machine).
ANSWER_WITHIN_S = 5.0


@pytest.fixture
def own_redis() -> Iterator[LocalRedis]:
    """A server for this test alone."""
    server = LocalRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(problems, "REDIS_DEADLINE_S", DEADLINE_S, raising=False)


async def _server_pid(url: str) -> int:
    async with open_redis(url) as client:
        info = await client.info("server")
    return int(info["process_id"])


@asynccontextmanager
async def _paused(pid: int) -> AsyncIterator[None]:
    """The server stops answering (SIGSTOP) until the block exits (SIGCONT)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _requests(gateway: RunningGateway, tenant: str) -> list[tuple[str, str, dict[str, object]]]:
    one = notification(tenant)
    return [
        ("GET", "/v1/admin/dlq", {}),
        ("POST", "/v1/admin/dlq/replay", {"json": {"dry_run": True}}),
        ("POST", "/v1/admin/dlq/replay", {"json": {"dry_run": False}}),
        ("GET", f"/v1/notifications/{new_notification_id()}", {}),
        ("POST", "/v1/notifications", {"json": one}),
        ("POST", "/v1/notifications:batch", {"json": {"notifications": [one]}}),
    ]


async def _assert_all_unavailable(gateway: RunningGateway, tenant: str) -> None:
    headers = gateway.auth(tenant, scopes=ADMIN_SCOPES)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=15.0) as client:
        for method, path, extra in _requests(gateway, tenant):
            started = time.monotonic()
            r = await client.request(method, path, headers=headers, **extra)  # type: ignore[arg-type]
            elapsed = time.monotonic() - started
            assert r.status_code == 503, (method, path, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["type"] == "urn:notifactor:problem:unavailable", (method, path)
            assert int(r.headers["retry-after"]) >= 1, (method, path)
            assert elapsed < ANSWER_WITHIN_S, (method, path, elapsed)


async def test_redis_unreachable_is_a_503_on_every_route_that_needs_it(
    own_redis: LocalRedis, tmp_path: Path, redis_prefix: str, tenant: str, short_deadline: None
) -> None:
    async with serve_admin_gateway(
        own_redis.url, tmp_path, redis_prefix, dlq_call_timeout_s=DEADLINE_S
    ) as gateway:
        own_redis.stop()
        await _assert_all_unavailable(gateway, tenant)


async def test_a_stalled_redis_is_a_503_within_the_deadline(
    own_redis: LocalRedis, tmp_path: Path, redis_prefix: str, tenant: str, short_deadline: None
) -> None:
    pid = await _server_pid(own_redis.url)
    async with serve_admin_gateway(
        own_redis.url, tmp_path, redis_prefix, dlq_call_timeout_s=DEADLINE_S
    ) as gateway:
        async with gateway.client() as client:  # warm: connections open, scripts loaded
            r = await client.get("/v1/admin/dlq", headers=gateway.auth(tenant, scopes=ADMIN_SCOPES))
            assert r.status_code == 200, r.text
        async with _paused(pid):
            await _assert_all_unavailable(gateway, tenant)
        await _assert_recovered(gateway, tenant)


async def _assert_recovered(gateway: RunningGateway, tenant: str) -> None:
    """Every route answers normally again: abandoned calls left no reply out of step."""
    headers = gateway.auth(tenant, scopes=ADMIN_SCOPES)
    async with gateway.client() as client:
        r = await client.get("/v1/admin/dlq", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == {"items": [], "next_cursor": None}
        r = await client.post("/v1/notifications", json=notification(tenant), headers=headers)
        assert r.status_code == 202, r.text
        r = await client.get(f"/v1/notifications/{r.json()['id']}", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["tenant_id"] == tenant
