"""Tokens whose claims are out of range, sent to a real gateway."""

from __future__ import annotations

from pathlib import Path

import jwt

from tests.e2e.conftest import SECRET, serve_gateway


async def test_an_exp_beyond_any_float_is_a_401_not_a_500(redis_url: str, tmp_path: Path) -> None:
    token = jwt.encode({"sub": "u", "tenant_id": "acme", "exp": 10**400}, SECRET)
    async with serve_gateway(redis_url, tmp_path) as running, running.client() as client:
        response = await client.get(
            "/v1/admin/policy", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
