"""``RateLimit-*`` and ``Retry-After`` describe the limit that binds: the daily quota resets at UTC midnight.

Against a real gateway on a real Redis (SQLite storage).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx

from notifactor.adapters.redis_ingest import IngestSettings
from notifactor.config import TenantPolicy
from tests.e2e.conftest import notification, serve_gateway

#: Slack for the clock moving between the request and the assertion.
SLACK_S = 3


def _to_utc_midnight_s() -> int:
    return math.ceil(86_400 - time.time() % 86_400)


def _assert_near_midnight(value: str) -> None:
    expected = _to_utc_midnight_s()
    assert expected - SLACK_S <= int(value) <= expected + SLACK_S, (value, expected)


def _rate(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("ratelimit-") or k == "retry-after"}


async def test_the_request_that_uses_the_last_quota_unit_reports_the_quota(
    redis_url: str, tmp_path: Path, tenant: str
) -> None:
    policy = TenantPolicy(rate_per_s=1000, burst=1000, daily_quota=2)
    async with (
        serve_gateway(redis_url, tmp_path, tenants={tenant: policy}) as gateway,
        gateway.client() as client,
    ):
        first = await client.post(
            "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
        )
        last = await client.post(
            "/v1/notifications", json=notification(tenant), headers=gateway.auth(tenant)
        )
    assert first.status_code == 202
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
    _assert_near_midnight(first.headers["ratelimit-reset"])
    assert last.status_code == 202
    assert (last.headers["ratelimit-limit"], last.headers["ratelimit-remaining"]) == ("2", "0")
    _assert_near_midnight(last.headers["ratelimit-reset"])
    assert "retry-after" not in last.headers


async def test_a_batch_past_the_quota_says_when_to_retry(
    redis_url: str, tmp_path: Path, tenant: str
) -> None:
    policy = TenantPolicy(rate_per_s=1000, burst=1000, daily_quota=2)
    items: list[Any] = [notification(tenant, user_id=f"u{i}") for i in range(3)]
    async with (
        serve_gateway(redis_url, tmp_path, tenants={tenant: policy}) as gateway,
        gateway.client() as client,
    ):
        partly = await client.post(
            "/v1/notifications:batch", json={"notifications": items}, headers=gateway.auth(tenant)
        )
        none = await client.post(
            "/v1/notifications:batch",
            json={"notifications": items[:1]},
            headers=gateway.auth(tenant),
        )
    for r in (partly, none):
        assert r.status_code == 202, r.text
        assert (r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"]) == ("2", "0")
        _assert_near_midnight(r.headers["ratelimit-reset"])
        _assert_near_midnight(r.headers["retry-after"])
        error = r.json()["results"][-1]["error"]
        assert error["status"] == 429
        _assert_near_midnight(str(error["retry_after"]))
    assert ["id" in item for item in partly.json()["results"]] == [True, True, False]


async def test_a_rate_limited_batch_gives_the_shortest_wait(
    redis_url: str, tmp_path: Path, tenant: str
) -> None:
    policy = TenantPolicy(rate_per_s=0.5, burst=2, daily_quota=0)
    items: list[Any] = [notification(tenant, user_id=f"u{i}") for i in range(4)]
    async with (
        serve_gateway(redis_url, tmp_path, tenants={tenant: policy}) as gateway,
        gateway.client() as client,
    ):
        r = await client.post(
            "/v1/notifications:batch", json={"notifications": items}, headers=gateway.auth(tenant)
        )
    assert r.status_code == 202, r.text
    results = r.json()["results"]
    assert ["id" in item for item in results] == [True, True, False, False]
    waits = [item["error"]["retry_after"] for item in results[2:]]
    assert all(1 <= w <= 2 for w in waits), waits
    assert int(r.headers["retry-after"]) == min(waits), _rate(r)
    assert (r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"]) == ("2", "0")
    assert 3 <= int(r.headers["ratelimit-reset"]) <= 4, _rate(r)


async def test_an_unlimited_batch_carries_no_retry_after(
    redis_url: str, tmp_path: Path, tenant: str
) -> None:
    policy = TenantPolicy(rate_per_s=1000, burst=10, daily_quota=0)
    async with (
        serve_gateway(redis_url, tmp_path, tenants={tenant: policy}) as gateway,
        gateway.client() as client,
    ):
        r = await client.post(
            "/v1/notifications:batch",
            json={"notifications": [notification(tenant)]},
            headers=gateway.auth(tenant),
        )
    assert r.status_code == 202, r.text
    assert "retry-after" not in r.headers
    assert (r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"]) == ("10", "9")


async def test_a_batch_item_shed_for_lag_says_when_to_retry(
    redis_url: str, tmp_path: Path, tenant: str
) -> None:
    settings = IngestSettings(max_stream_lag=1, stream_prefix=f"test:{tenant}:stream:")
    async with (
        serve_gateway(redis_url, tmp_path, settings=settings) as gateway,
        gateway.client() as client,
    ):
        batch = {"notifications": [notification(tenant), notification(tenant)]}
        first = await client.post(
            "/v1/notifications:batch", json=batch, headers=gateway.auth(tenant)
        )
        second = await client.post(
            "/v1/notifications:batch", json=batch, headers=gateway.auth(tenant)
        )
    assert first.status_code == 202, first.text
    assert "retry-after" not in first.headers
    assert second.status_code == 202, second.text
    errors = [item["error"] for item in second.json()["results"]]
    assert [e["status"] for e in errors] == [503, 503]
    assert [e["retry_after"] for e in errors] == [1, 1]
    assert second.headers["retry-after"] == "1"
