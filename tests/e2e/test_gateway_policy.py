"""GET /v1/admin/policy: the effective tenant policy, to the tenant's own admins."""

from __future__ import annotations

from pathlib import Path

from notifactor.config import TenantPolicy
from tests.e2e.conftest import Storage, serve_gateway
from tests.e2e.test_gateway_ingest import assert_problem


async def test_policy_is_the_tenants_own_or_the_default(
    redis_url: str, tmp_path: Path, tenant: str, other_tenant: str, storage: Storage
) -> None:
    own = TenantPolicy(rate_per_s=7.5, burst=9, daily_quota=1234, max_attempts=3)
    async with (
        serve_gateway(redis_url, tmp_path, cassandra=storage, tenants={tenant: own}) as gateway,
        gateway.client() as client,
    ):
        r = await client.get("/v1/admin/policy", headers=gateway.auth(tenant, scopes=("admin",)))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["tenant_id"] == tenant
        assert body["source"] == "tenant"
        assert body["policy"]["rate_per_s"] == 7.5
        assert body["policy"]["burst"] == 9
        assert body["policy"]["daily_quota"] == 1234
        assert body["policy"]["max_attempts"] == 3
        assert set(body["policy"]) == {
            "rate_per_s",
            "burst",
            "daily_quota",
            "max_ws_connections",
            "max_attempts",
            "retry_base_ms",
            "retry_cap_ms",
            "retention_days",
        }
        other = await client.get(
            "/v1/admin/policy", headers=gateway.auth(other_tenant, scopes=("admin",))
        )
        assert other.json()["source"] == "default"
        assert other.json()["tenant_id"] == other_tenant
        assert other.json()["policy"]["burst"] == gateway.config.tenant_policy("x").burst
        assert_problem(await client.get("/v1/admin/policy", headers=gateway.auth(tenant)), 403)
        assert_problem(await client.get("/v1/admin/policy"), 401)
        assert_problem(
            await client.post("/v1/admin/policy", headers=gateway.auth(tenant, scopes=("admin",))),
            405,
        )
