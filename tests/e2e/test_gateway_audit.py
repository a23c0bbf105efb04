"""The tenant audit trail through a real gateway: what is noted, and GET /v1/admin/audit.

Accepted requests and auth or policy refusals are summarised per window
(0.1 s in these tests) into audit events, written through the storage writer
to SQLite, and read back over HTTP by an admin of the same tenant only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import trio

from notifactor.config import TenantPolicy
from tests.e2e.conftest import SECRET, RunningGateway, Storage, notification, serve_gateway
from tests.e2e.test_gateway_ingest import assert_problem

ADMIN = ("admin",)


async def audit_events(
    gateway: RunningGateway, tenant: str, *, want: int, timeout_s: float = 5.0
) -> list[dict[str, Any]]:
    """Every audit event of ``tenant`` (all pages), once at least ``want`` are there."""
    async with gateway.client() as client:
        with trio.move_on_after(timeout_s):
            while True:
                events: list[dict[str, Any]] = []
                cursor: str | None = None
                while True:
                    params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
                    r = await client.get(
                        "/v1/admin/audit",
                        params=params,
                        headers=gateway.auth(tenant, "auditor", scopes=ADMIN),
                    )
                    assert r.status_code == 200, r.text
                    page = r.json()
                    events += page["items"]
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                if len(events) >= want:
                    return events
                await trio.sleep(0.05)
    raise AssertionError(f"fewer than {want} audit events for {tenant}: {events}")


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == event_type]


async def test_accepted_requests_are_summarised_with_their_ids(
    gateway: RunningGateway, tenant: str
) -> None:
    async with gateway.client() as client:
        ids = []
        for _ in range(3):
            r = await client.post(
                "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
            )
            assert r.status_code == 202
            ids.append(r.json()["id"])
        headers = {**gateway.auth(tenant), "Idempotency-Key": "once"}
        first = await client.post("/v1/notifications", json=notification(tenant), headers=headers)
        again = await client.post("/v1/notifications", json=notification(tenant), headers=headers)
        assert first.json()["id"] == again.json()["id"]
        batch = await client.post(
            "/v1/notifications:batch",
            json={"notifications": [notification(tenant), notification(tenant)]},
            headers=gateway.auth(tenant, "batcher"),
        )
        batch_ids = [item["id"] for item in batch.json()["results"]]

    events = await audit_events(gateway, tenant, want=2)
    accepted = of_type(events, "notifications.accepted")
    single = [e for e in accepted if e["metadata"]["route"] == "notifications"]
    by_batch = [e for e in accepted if e["metadata"]["route"] == "batch"]
    assert sum(e["metadata"]["count"] for e in single) == 5
    assert sorted(i for e in single for i in e["metadata"]["notification_ids"]) == sorted(
        [*ids, first.json()["id"]]
    )
    assert [i for e in single for i in e["metadata"]["duplicate_ids"]] == [first.json()["id"]]
    assert {e["metadata"]["subject"] for e in single} == {"user-1"}
    assert [i for e in by_batch for i in e["metadata"]["notification_ids"]] == batch_ids
    assert {e["metadata"]["subject"] for e in by_batch} == {"batcher"}
    for event in accepted:
        assert event["metadata"]["status"] == 202
        assert event["metadata"]["first_at"] <= event["metadata"]["last_at"]


async def test_auth_refusals_go_to_the_token_tenant_only_when_signed(
    gateway: RunningGateway, tenant: str, other_tenant: str
) -> None:
    expired = gateway.token(tenant, "late", now=int(time.time()) - 7200, ttl_s=60)
    forged = jwt.encode(
        {"sub": "mallory", "tenant_id": tenant, "exp": int(time.time()) + 60}, "x" * 40
    )
    async with gateway.client() as client:
        for token in (expired, forged):
            r = await client.post(
                "/v1/notifications",
                json=notification(tenant),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert_problem(r, 401)
        read_only = gateway.auth(tenant, "reader", scopes=("notifications:read",))
        r = await client.post("/v1/notifications", json=notification(tenant), headers=read_only)
        assert_problem(r, 403)
        r = await client.get(f"/v1/tenants/{other_tenant}/deliveries", headers=read_only)
        assert_problem(r, 403)
        r = await client.post(
            "/v1/notifications", json=notification(other_tenant), headers=gateway.auth(tenant)
        )
        assert_problem(r, 403)

    events = await audit_events(gateway, tenant, want=4)
    rejected = of_type(events, "request.rejected")
    seen = {
        (e["metadata"]["subject"], e["metadata"]["route"], e["metadata"]["status"])
        for e in rejected
    }
    assert ("late", "notifications", 401) in seen
    assert ("reader", "notifications", 403) in seen
    assert ("reader", "deliveries", 403) in seen
    assert ("user-1", "notifications", 403) in seen
    # A badly signed token proves nothing about its tenant: not in its log.
    assert all(e["metadata"]["subject"] != "mallory" for e in events)
    late = next(e for e in rejected if e["metadata"]["subject"] == "late")
    assert late["metadata"]["reason"] == "token expired"
    # Nothing of the tokens themselves is kept.
    text = repr(events)
    assert expired not in text
    assert forged not in text
    # The other tenant's log holds none of it.
    assert await audit_events(gateway, other_tenant, want=0, timeout_s=0.3) == []


async def test_policy_refusals_are_counted_per_reason(
    redis_url: str, tmp_path: Path, tenant: str, storage: Storage
) -> None:
    policy = TenantPolicy(rate_per_s=0.01, burst=2, daily_quota=0)
    async with (
        serve_gateway(redis_url, tmp_path, cassandra=storage, tenants={tenant: policy}) as gateway,
        gateway.client() as client,
    ):
        statuses = []
        for _ in range(5):
            r = await client.post(
                "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
            )
            statuses.append(r.status_code)
        batch = await client.post(
            "/v1/notifications:batch",
            json={"notifications": [notification(tenant)] * 3},
            headers=gateway.auth(tenant),
        )
        assert statuses == [202, 202, 429, 429, 429]
        assert all("error" in item for item in batch.json()["results"])

        events = await audit_events(gateway, tenant, want=3)
    limited = [
        e
        for e in of_type(events, "request.rejected")
        if e["metadata"]["status"] == 429
        and e["metadata"]["reason"].endswith("rate limit is exceeded.")
    ]
    assert (
        sum(e["metadata"]["count"] for e in limited if e["metadata"]["route"] == "notifications")
        == 3
    )
    assert sum(e["metadata"]["count"] for e in limited if e["metadata"]["route"] == "batch") == 3
    accepted = of_type(events, "notifications.accepted")
    assert sum(e["metadata"]["count"] for e in accepted) == 2


async def test_audit_listing_needs_admin_and_validates_its_query(
    gateway: RunningGateway, tenant: str
) -> None:
    async with gateway.client() as client:
        r = await client.get("/v1/admin/audit", headers=gateway.auth(tenant))
        assert_problem(r, 403)
        r = await client.get("/v1/admin/audit")
        assert_problem(r, 401)
        admin = gateway.auth(tenant, "auditor", scopes=ADMIN)
        for params in (
            {"limit": "0"},
            {"since": "yesterday"},
            {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            {"colour": "blue"},
        ):
            r = await client.get("/v1/admin/audit", params=params, headers=admin)
            assert_problem(r, 422)
        r = await client.get("/v1/admin/audit", params={"cursor": "not-a-cursor"}, headers=admin)
        assert_problem(r, 400)
    # The refused listing itself is on the record.
    events = await audit_events(gateway, tenant, want=1)
    assert any(
        e["metadata"]["route"] == "admin-audit" and e["metadata"]["status"] == 403
        for e in of_type(events, "request.rejected")
    )


async def test_since_and_until_narrow_the_listing(gateway: RunningGateway, tenant: str) -> None:
    async with gateway.client() as client:
        r = await client.post(
            "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
        )
        assert r.status_code == 202
        events = await audit_events(gateway, tenant, want=1)
        admin = gateway.auth(tenant, "auditor", scopes=ADMIN)
        later = await client.get(
            "/v1/admin/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=admin
        )
        earlier = await client.get(
            "/v1/admin/audit", params={"until": "2000-01-01T00:00:00Z"}, headers=admin
        )
    assert events
    assert later.json()["items"] == []
    assert earlier.json()["items"] == []
    assert SECRET not in repr(events)
