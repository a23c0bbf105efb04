"""Odd query and body values on the listing routes and DLQ replay: a 422 naming the field, never a 500.

Every case goes over a real socket to a listening gateway on a real Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from notifactor.adapters.redis_dispatch import RedisKeys
from notifactor.domain.rfc3339 import format_rfc3339
from tests.e2e.admin_gateway import serve_admin_gateway
from tests.e2e.conftest import RunningGateway
from tests.e2e.test_gateway_ingest import assert_problem
from tests.integration.dispatcher_harness import append_dead_letter, make_envelope

ADMIN_SCOPES = ("admin", "deliveries:read", "notifications:read")

#: ``limit`` values that are not an ASCII integer 1..500, though ``str.isdigit`` accepts some.
BAD_LIMITS = ["²", "٣", "1" * 5000, "+5", " 5", "0", "501"]
#: Times whose conversion to UTC leaves the range of a date-time.
OUT_OF_RANGE_TIMES = [
    ("since", "0001-01-01T00:00:00+01:00"),
    ("until", "9999-12-31T23:59:59-01:00"),
]
#: DLQ cursors shaped like stream ids that no listing returns and Redis refuses.
BAD_DLQ_CURSORS = [
    "0-0",
    "99999999999999999999999-0",
    "1-99999999999999999999999",
    "18446744073709551616-0",
    "²-1",
    "1-²",
    "٣-1",
    "1" * 5000 + "-1",
    "-1",
    "1-",
    "1-2-3",
]


@pytest.fixture
async def admin_gateway(
    redis_url: str, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[RunningGateway]:
    async with serve_admin_gateway(redis_url, tmp_path, redis_prefix) as running:
        yield running


def _fields(response: httpx.Response) -> list[str]:
    body = assert_problem(response, 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    return [e["field"] for e in errors]


def _listings(tenant: str) -> list[str]:
    return [f"/v1/tenants/{tenant}/deliveries", "/v1/admin/audit", "/v1/admin/dlq"]


@pytest.mark.parametrize("limit", BAD_LIMITS)
async def test_a_bad_limit_is_a_422_on_every_listing(
    admin_gateway: RunningGateway, tenant: str, limit: str
) -> None:
    headers = admin_gateway.auth(tenant, scopes=ADMIN_SCOPES)
    async with admin_gateway.client() as client:
        for path in _listings(tenant):
            r = await client.get(path, params={"limit": limit}, headers=headers)
            assert _fields(r) == ["limit"], path


@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE_TIMES)
async def test_a_time_out_of_range_in_utc_is_a_422(
    admin_gateway: RunningGateway, tenant: str, name: str, value: str
) -> None:
    headers = admin_gateway.auth(tenant, scopes=ADMIN_SCOPES)
    async with admin_gateway.client() as client:
        for path in (f"/v1/tenants/{tenant}/deliveries", "/v1/admin/audit"):
            r = await client.get(path, params={name: value}, headers=headers)
            assert _fields(r) == [name], path
        r = await client.post(
            "/v1/admin/dlq/replay", json={"dry_run": True, name: value}, headers=headers
        )
        assert _fields(r) == [name]


async def test_the_extreme_times_still_in_range_are_accepted(
    admin_gateway: RunningGateway, tenant: str
) -> None:
    headers = admin_gateway.auth(tenant, scopes=ADMIN_SCOPES)
    window = {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999999Z"}
    async with admin_gateway.client() as client:
        for path in (f"/v1/tenants/{tenant}/deliveries", "/v1/admin/audit"):
            r = await client.get(path, params=window, headers=headers)
            assert r.status_code == 200, (path, r.text)
        r = await client.post(
            "/v1/admin/dlq/replay", json={"dry_run": True, **window}, headers=headers
        )
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("cursor", BAD_DLQ_CURSORS)
async def test_a_dlq_cursor_redis_would_refuse_is_a_422(
    admin_gateway: RunningGateway, tenant: str, cursor: str
) -> None:
    async with admin_gateway.client() as client:
        r = await client.get(
            "/v1/admin/dlq",
            params={"cursor": cursor},
            headers=admin_gateway.auth(tenant, scopes=ADMIN_SCOPES),
        )
    assert _fields(r) == ["cursor"]


@pytest.mark.parametrize("cursor", ["0-1", "1-0", "18446744073709551615-18446744073709551615"])
async def test_a_dlq_cursor_at_the_edges_of_the_id_space_is_served(
    admin_gateway: RunningGateway, tenant: str, cursor: str
) -> None:
    async with admin_gateway.client() as client:
        r = await client.get(
            "/v1/admin/dlq",
            params={"cursor": cursor},
            headers=admin_gateway.auth(tenant, scopes=ADMIN_SCOPES),
        )
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []


async def _dead_letter(
    gateway: RunningGateway, redis_prefix: str, tenant: str, at: datetime | None = None
) -> str:
    """Append one dead letter of ``tenant`` (dead ``at``, now by default); its notification id."""
    envelope = make_envelope(tenant, "user-1")
    await append_dead_letter(
        gateway.redis, RedisKeys(prefix=redis_prefix).dlq, envelope, dead_at=at
    )
    return envelope.id


async def test_replay_windows_reaching_before_1970(
    admin_gateway: RunningGateway, redis_prefix: str, tenant: str
) -> None:
    """``since`` before the epoch covers everything; ``until`` before it covers nothing."""
    notification_id = await _dead_letter(admin_gateway, redis_prefix, tenant)
    headers = admin_gateway.auth(tenant, scopes=ADMIN_SCOPES)
    async with admin_gateway.client() as client:
        since = await client.post(
            "/v1/admin/dlq/replay",
            json={"dry_run": True, "since": "1969-12-31T00:00:00Z"},
            headers=headers,
        )
        until = await client.post(
            "/v1/admin/dlq/replay",
            json={"dry_run": True, "until": "1960-01-01T00:00:00Z"},
            headers=headers,
        )
        both = await client.post(
            "/v1/admin/dlq/replay",
            json={
                "dry_run": True,
                "since": "1900-01-01T00:00:00Z",
                "until": "1969-12-31T23:59:59Z",
            },
            headers=headers,
        )
    assert since.status_code == 200, since.text
    assert [i["notification_id"] for i in since.json()["items"]] == [notification_id]
    assert until.status_code == 200, until.text
    assert until.json()["items"] == []
    assert both.status_code == 200, both.text
    assert both.json()["items"] == []


async def test_dlq_items_carry_rfc3339_utc_times(
    admin_gateway: RunningGateway, redis_prefix: str, tenant: str
) -> None:
    """The same shape as every other route's times, whatever offset the entry was stored with."""
    at = datetime.now(timezone(timedelta(hours=2))).replace(microsecond=0)
    await _dead_letter(admin_gateway, redis_prefix, tenant, at)
    async with admin_gateway.client() as client:
        r = await client.get(
            "/v1/admin/dlq", headers=admin_gateway.auth(tenant, scopes=ADMIN_SCOPES)
        )
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    for name in ("first_attempt_at", "last_attempt_at", "dead_at"):
        assert item[name] == format_rfc3339(at), name
        assert item[name].endswith("Z")
