"""POST /v1/notifications and GET /v1/notifications/{id} against a real gateway."""

from __future__ import annotations

import json
import socket
import time
import warnings
from pathlib import Path

import httpx
import jwt
import pytest
import trio
from jwt.warnings import InsecureKeyLengthWarning

from notifactor.adapters.redis_ingest import IngestSettings
from notifactor.config import TenantPolicy
from notifactor.domain.envelope import ENVELOPE_FIELD, decode_envelope
from notifactor.domain.ids import is_notification_id
from notifactor.domain.partitioning import partition_for
from tests.e2e.conftest import SECRET, RunningGateway, Storage, notification, serve_gateway

CHALLENGE = 'Bearer error="invalid_token"'


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    return body  # type: ignore[no-any-return]


async def test_accepts_enqueues_and_reads_back_at_once(
    gateway: RunningGateway, tenant: str
) -> None:
    async with gateway.client() as client:
        r = await client.post(
            "/v1/notifications",
            json=notification(tenant, user_id="user-7"),
            headers={
                **gateway.auth(tenant),
                "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
            },
        )
        assert r.status_code == 202, r.text
        body = r.json()
        nid = body["id"]
        assert body == {"id": nid, "status": "accepted"}
        assert is_notification_id(nid)
        assert r.headers["location"] == f"/v1/notifications/{nid}"
        assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(r.headers)

        g = await client.get(f"/v1/notifications/{nid}", headers=gateway.auth(tenant))
    assert g.status_code == 200, g.text
    view = g.json()
    assert view["status"] == "accepted"
    assert view["id"] == nid
    assert view["tenant_id"] == tenant
    assert view["user_id"] == "user-7"
    assert view["content"] == "Deployment completed"
    assert view["metadata"] == {"build": 42}
    assert view["created_at"].endswith("Z")
    assert view["attempts"] == 0
    assert view["last_error"] is None

    partition = partition_for(tenant, "user-7", gateway.config.supervision.partitions)
    entries = await gateway.redis.xrange(gateway.settings.stream(partition))
    envelopes = [decode_envelope(e.field_values[ENVELOPE_FIELD.encode()]) for e in entries]
    mine = [e for e in envelopes if e.id == nid]
    assert len(mine) == 1
    assert mine[0].schema_version == 1
    assert mine[0].traceparent.startswith("00-" + "a" * 32 + "-")


async def test_ids_are_time_ordered(gateway: RunningGateway, tenant: str) -> None:
    ids = []
    async with gateway.client() as client:
        for _ in range(20):
            r = await client.post(
                "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
            )
            ids.append(r.json()["id"])
    assert ids == sorted(ids)
    assert len(set(ids)) == 20


def _hs512(claims: dict[str, object]) -> str:
    """A token signed with the right secret but HS512, an algorithm the gateway does not accept.

    The secret is shorter than HS512 wants, which PyJWT warns about; that is
    beside the point here (the gateway must refuse the algorithm itself).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, SECRET, algorithm="HS512")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.jwt",
        "Bearer "
        + jwt.encode(
            {"sub": "u", "tenant_id": "t", "exp": int(time.time()) + 60}, "wrong-secret-" + "x" * 30
        ),
        "Bearer "
        + jwt.encode({"sub": "u", "tenant_id": "t", "exp": int(time.time()) - 120}, SECRET),
        "Bearer " + jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, SECRET),
        "Bearer " + jwt.encode({"tenant_id": "t", "exp": int(time.time()) + 60}, SECRET),
        "Bearer " + jwt.encode({"sub": "u", "tenant_id": "t"}, SECRET),
        "Bearer " + _hs512({"sub": "u", "tenant_id": "t", "exp": int(time.time()) + 60}),
        "Bearer "
        + jwt.encode(
            {"sub": "u", "tenant_id": "t", "exp": int(time.time()) + 60}, None, algorithm="none"
        ),
    ],
    ids=[
        "missing",
        "empty",
        "basic",
        "garbage",
        "bad-signature",
        "expired",
        "no-tenant",
        "no-sub",
        "no-exp",
        "other-alg",
        "alg-none",
    ],
)
async def test_bad_tokens_get_401_with_challenge(
    gateway: RunningGateway, tenant: str, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with gateway.client() as client:
        for method, path in [
            ("POST", "/v1/notifications"),
            ("POST", "/v1/notifications:batch"),
            ("GET", "/v1/notifications/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            ("GET", f"/v1/tenants/{tenant}/deliveries"),
        ]:
            r = await client.request(method, path, json=notification(tenant), headers=headers)
            assert_problem(r, 401)
            assert r.headers["www-authenticate"] == CHALLENGE


async def test_expired_within_leeway_is_accepted(gateway: RunningGateway, tenant: str) -> None:
    token = gateway.token(tenant, now=int(time.time()) - 3610, ttl_s=3600)  # expired 10 s ago
    async with gateway.client() as client:
        r = await client.post(
            "/v1/notifications",
            json=notification(tenant),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 202


async def test_missing_scope_is_403(gateway: RunningGateway, tenant: str) -> None:
    async with gateway.client() as client:
        headers = gateway.auth(tenant, scopes=("notifications:read",))
        r = await client.post("/v1/notifications", json=notification(tenant), headers=headers)
        assert_problem(r, 403)
        r = await client.post(
            "/v1/notifications:batch",
            json={"notifications": [notification(tenant)]},
            headers=headers,
        )
        assert_problem(r, 403)
        r = await client.get(f"/v1/tenants/{tenant}/deliveries", headers=headers)
        assert_problem(r, 403)


async def test_cross_tenant_attempts(
    gateway: RunningGateway, tenant: str, other_tenant: str
) -> None:
    async with gateway.client() as client:
        # Body tenant is not the token's tenant.
        r = await client.post(
            "/v1/notifications", json=notification(other_tenant), headers=gateway.auth(tenant)
        )
        assert_problem(r, 403)
        # Another tenant's notification id reads as unknown.
        r = await client.post(
            "/v1/notifications", json=notification(other_tenant), headers=gateway.auth(other_tenant)
        )
        theirs = r.json()["id"]
        r = await client.get(f"/v1/notifications/{theirs}", headers=gateway.auth(tenant))
        body = assert_problem(r, 404)
        unknown = await client.get(
            "/v1/notifications/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", headers=gateway.auth(tenant)
        )
        assert unknown.json()["detail"] == body["detail"]  # indistinguishable from an unknown id
        # Another tenant's deliveries path.
        r = await client.get(f"/v1/tenants/{other_tenant}/deliveries", headers=gateway.auth(tenant))
        assert_problem(r, 403)
        # In a batch, only the foreign item is refused.
        r = await client.post(
            "/v1/notifications:batch",
            json={"notifications": [notification(tenant), notification(other_tenant)]},
            headers=gateway.auth(tenant),
        )
        results = r.json()["results"]
        assert "id" in results[0]
        assert results[1]["error"]["status"] == 403


async def test_reading_without_read_scope_only_own_notifications(
    gateway: RunningGateway, tenant: str
) -> None:
    async with gateway.client() as client:
        r = await client.post(
            "/v1/notifications",
            json=notification(tenant, user_id="alice"),
            headers=gateway.auth(tenant),
        )
        nid = r.json()["id"]
        alice = gateway.auth(tenant, "alice", scopes=())
        bob = gateway.auth(tenant, "bob", scopes=())
        reader = gateway.auth(tenant, "bob", scopes=("notifications:read",))
        assert (await client.get(f"/v1/notifications/{nid}", headers=alice)).status_code == 200
        # Same tenant, another user, no read scope: a missing scope (SPEC §3), not hidden.
        assert_problem(await client.get(f"/v1/notifications/{nid}", headers=bob), 403)
        assert (await client.get(f"/v1/notifications/{nid}", headers=reader)).status_code == 200
        assert_problem(await client.get("/v1/notifications/not-an-id", headers=reader), 404)


async def test_content_type_size_and_json_errors(gateway: RunningGateway, tenant: str) -> None:
    auth = gateway.auth(tenant)
    async with gateway.client() as client:
        r = await client.post(
            "/v1/notifications", content=b"{}", headers={**auth, "content-type": "text/plain"}
        )
        assert_problem(r, 415)
        r = await client.post("/v1/notifications", content=b"{}", headers=auth)
        assert_problem(r, 415)  # no content type at all
        big = json.dumps(notification(tenant, content="x" * 70_000)).encode()
        r = await client.post(
            "/v1/notifications", content=big, headers={**auth, "content-type": "application/json"}
        )
        assert_problem(r, 413)

        async def chunks():  # no Content-Length: the limit holds while reading
            for _ in range(20):
                yield b" " * 4096

        r = await client.post(
            "/v1/notifications",
            content=chunks(),
            headers={**auth, "content-type": "application/json"},
        )
        assert_problem(r, 413)
        r = await client.post(
            "/v1/notifications",
            content=b"{not json",
            headers={**auth, "content-type": "application/json"},
        )
        assert_problem(r, 400)
        r = await client.post(
            "/v1/notifications",
            content=b"{}",
            headers={**auth, "content-type": "application/json; charset=utf-8"},
        )
        assert_problem(r, 422)


async def test_validation_lists_every_failing_field(gateway: RunningGateway, tenant: str) -> None:
    body = {
        "tenant_id": tenant,
        "user_id": "bad user",
        "channel": "a" * 65,
        "content": "",
        "priority": "urgent",
        "metadata": {"x": "y" * 5000},
        "extra": 1,
    }
    async with gateway.client() as client:
        r = await client.post("/v1/notifications", json=body, headers=gateway.auth(tenant))
    problem = assert_problem(r, 422)
    fields = {e["field"] for e in problem["errors"]}  # type: ignore[attr-defined]
    assert fields == {"user_id", "channel", "content", "priority", "metadata", "extra"}


async def test_idempotency_key_sequential_and_invalid(
    gateway: RunningGateway, tenant: str, other_tenant: str
) -> None:
    async with gateway.client() as client:
        first = await client.post(
            "/v1/notifications",
            json=notification(tenant),
            headers={**gateway.auth(tenant), "Idempotency-Key": "k-1"},
        )
        again = await client.post(
            "/v1/notifications",
            json=notification(tenant),
            headers={**gateway.auth(tenant), "Idempotency-Key": "k-1"},
        )
        other = await client.post(
            "/v1/notifications",
            json=notification(other_tenant),
            headers={**gateway.auth(other_tenant), "Idempotency-Key": "k-1"},
        )
        assert first.status_code == again.status_code == 202
        assert first.json()["id"] == again.json()["id"]
        assert other.json()["id"] != first.json()["id"]  # keys are per tenant
        r = await client.post(
            "/v1/notifications",
            json=notification(tenant),
            headers={**gateway.auth(tenant), "Idempotency-Key": "k" * 256},
        )
        assert_problem(r, 400)


async def test_idempotency_under_concurrency(gateway: RunningGateway, tenant: str) -> None:
    ids: list[str] = []
    async with gateway.client() as client:

        async def post() -> None:
            r = await client.post(
                "/v1/notifications",
                json=notification(tenant, user_id="conc"),
                headers={**gateway.auth(tenant), "Idempotency-Key": "same"},
            )
            assert r.status_code == 202
            ids.append(r.json()["id"])

        async with trio.open_nursery() as nursery:
            for _ in range(30):
                nursery.start_soon(post)
    assert len(ids) == 30
    assert len(set(ids)) == 1
    partition = partition_for(tenant, "conc", gateway.config.supervision.partitions)
    entries = await gateway.redis.xrange(gateway.settings.stream(partition))
    mine = [e for e in entries if decode_envelope(e.field_values[b"envelope"]).tenant_id == tenant]
    assert len(mine) == 1


async def test_rate_limit_429_with_headers(
    redis_url: str, tmp_path: Path, tenant: str, storage: Storage
) -> None:
    policy = TenantPolicy(rate_per_s=0.5, burst=3, daily_quota=0)
    async with (
        serve_gateway(redis_url, tmp_path, cassandra=storage, tenants={tenant: policy}) as gateway,
        gateway.client() as client,
    ):
        statuses = []
        for _ in range(4):
            r = await client.post(
                "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
            )
            statuses.append(r.status_code)
        assert statuses == [202, 202, 202, 429]
        assert_problem(r, 429)
        assert int(r.headers["retry-after"]) in (1, 2)
        assert r.headers["ratelimit-limit"] == "3"
        assert r.headers["ratelimit-remaining"] == "0"
        assert 5 <= int(r.headers["ratelimit-reset"]) <= 6


async def test_daily_quota_429(
    redis_url: str, tmp_path: Path, tenant: str, storage: Storage
) -> None:
    policy = TenantPolicy(rate_per_s=1000, burst=1000, daily_quota=2)
    async with (
        serve_gateway(redis_url, tmp_path, cassandra=storage, tenants={tenant: policy}) as gateway,
        gateway.client() as client,
    ):
        codes = [
            (
                await client.post(
                    "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
                )
            ).status_code
            for _ in range(3)
        ]
        r = await client.post(
            "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
        )
    assert codes == [202, 202, 429]
    assert_problem(r, 429)
    assert r.headers["ratelimit-limit"] == "2"
    assert r.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(r.headers["retry-after"]) <= 86_400


async def test_saturated_pipeline_sheds_with_503(
    redis_url: str, tmp_path: Path, tenant: str, storage: Storage
) -> None:
    settings = IngestSettings(max_stream_lag=2, stream_prefix=f"test:{tenant}:stream:")
    async with (
        serve_gateway(redis_url, tmp_path, cassandra=storage, settings=settings) as gateway,
        gateway.client() as client,
    ):
        codes = []
        for _ in range(4):
            r = await client.post(
                "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
            )
            codes.append(r.status_code)
        assert codes == [202, 202, 202, 503]
        assert_problem(r, 503)
        assert r.headers["retry-after"] == "1"
        # A consumer group that has read everything clears the lag.
        stream = settings.stream(
            partition_for(tenant, "user-1", gateway.config.supervision.partitions)
        )
        await gateway.redis.xgroup_create(stream, "dispatchers", identifier="0")
        await gateway.redis.xreadgroup("dispatchers", "c1", streams={stream: ">"}, count=100)
        r = await client.post(
            "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
        )
        assert r.status_code == 202


async def test_unknown_path_and_method(gateway: RunningGateway) -> None:
    async with gateway.client() as client:
        assert_problem(await client.get("/nope"), 404)
        r = await client.delete("/v1/notifications")
        assert_problem(r, 405)
        assert r.headers["allow"] == "POST"


async def test_redis_unreachable_is_503_with_retry_after(
    tmp_path: Path, tenant: str, storage: Storage
) -> None:
    """Nothing listens where Redis should be: a 503 to retry, not a 500."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    async with (
        serve_gateway(f"redis://127.0.0.1:{dead_port}/0", tmp_path, cassandra=storage) as gateway,
        gateway.client() as client,
    ):
        r = await client.post(
            "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
        )
        body = assert_problem(r, 503)
        assert body["type"].endswith("unavailable")
        assert r.headers["retry-after"] == "1"
        r = await client.post(
            "/v1/notifications:batch",
            json={"notifications": [notification(tenant)]},
            headers=gateway.auth(tenant),
        )
        assert_problem(r, 503)
        # Not in storage, and the accepted record cannot be read: 503, never a 404
        # that could be wrong right after a 202.
        r = await client.get(
            "/v1/notifications/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", headers=gateway.auth(tenant)
        )
        assert_problem(r, 503)
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["checks"]["redis"] == "fail"
