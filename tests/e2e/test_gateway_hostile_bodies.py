"""Bodies that are not UTF-8 or nest too deeply: a 400 or a 422, never a 500.

Each case goes over a real socket to a listening gateway on a real Redis
(SQLite storage: the store plays no part in refusing a body).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifactor.gateway.validation import METADATA_MAX_DEPTH
from tests.e2e.admin_gateway import serve_admin_gateway
from tests.e2e.conftest import RunningGateway, notification, serve_gateway
from tests.e2e.test_gateway_ingest import assert_problem

JSON = {"content-type": "application/json"}
ADMIN_SCOPES = ("admin", "deliveries:read", "notifications:read")
#: A metadata depth no request handler can decode (the interpreter's
#: recursion limit is 1000): about 2 KB, under the metadata and body limits.
TOO_DEEP = 1000


@pytest.fixture
async def sqlite_gateway(redis_url: str, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with serve_gateway(redis_url, tmp_path) as running:
        yield running


@pytest.fixture
async def admin_gateway(
    redis_url: str, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[RunningGateway]:
    async with serve_admin_gateway(redis_url, tmp_path, redis_prefix) as running:
        yield running


def latin1_notification(tenant: str) -> bytes:
    """A notification body whose ``content`` is Latin-1 encoded: not UTF-8."""
    return f'{{"tenant_id":"{tenant}","user_id":"u","channel":"c","content":"caf\xe9"}}'.encode(
        "latin-1"
    )


def nested_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_metadata(depth: int) -> dict[str, Any]:
    """``{"a": [[...]]}``: an object holding arrays ``depth - 1`` deep (``depth`` levels)."""
    value: Any = []
    for _ in range(depth - 2):
        value = [value]
    return {"a": value}


def with_deep_metadata(tenant: str, depth: int) -> bytes:
    """A notification whose metadata is ``deep_metadata(depth)``, as JSON bytes.

    Written out by hand: encoding ~1000 levels from inside the test's own
    stack would fail in the client before the gateway saw a byte.
    """
    placeholder = "__deep__"
    body = json.dumps(notification(tenant, metadata={"a": placeholder}))
    levels = depth - 1
    return body.replace(f'"{placeholder}"', "[" * levels + "]" * levels).encode()


def metadata_errors(problem: dict[str, Any], field: str = "metadata") -> list[str]:
    return [e["message"] for e in problem["errors"] if e["field"] == field]


@pytest.mark.parametrize("path", ["/v1/notifications", "/v1/notifications:batch"])
async def test_a_body_that_is_not_utf8_is_malformed_json(
    sqlite_gateway: RunningGateway, tenant: str, path: str
) -> None:
    body = latin1_notification(tenant)
    if path.endswith(":batch"):
        body = b'{"notifications":[' + body + b"]}"
    async with sqlite_gateway.client() as client:
        r = await client.post(path, content=body, headers={**sqlite_gateway.auth(tenant), **JSON})
    problem = assert_problem(r, 400)
    assert str(problem["type"]).endswith("malformed-json")
    assert "UTF-8" in str(problem["detail"])


@pytest.mark.parametrize("path", ["/v1/notifications", "/v1/notifications:batch"])
async def test_a_body_nested_too_deeply_to_decode_is_malformed_json(
    sqlite_gateway: RunningGateway, tenant: str, path: str
) -> None:
    async with sqlite_gateway.client() as client:
        r = await client.post(
            path, content=nested_array(5000), headers={**sqlite_gateway.auth(tenant), **JSON}
        )
        problem = assert_problem(r, 400)
        assert str(problem["type"]).endswith("malformed-json")
        assert "deep" in str(problem["detail"])
        live = await client.get("/health/live")
    assert live.status_code == 200


async def test_dlq_replay_refuses_bodies_not_utf8_or_too_deep(
    admin_gateway: RunningGateway, tenant: str
) -> None:
    headers = {**admin_gateway.auth(tenant, scopes=ADMIN_SCOPES), **JSON}
    async with admin_gateway.client() as client:
        for body in (b'{"dry_run": true, "reason": "caf\xe9"}', nested_array(5000)):
            r = await client.post("/v1/admin/dlq/replay", content=body, headers=headers)
            problem = assert_problem(r, 400)
            assert str(problem["type"]).endswith("malformed-json")


def too_deep_to_decode(response: httpx.Response) -> bool:
    return response.status_code == 400 and response.json()["type"].endswith("malformed-json")


async def post_deepest_decodable(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], body: Callable[[int], bytes]
) -> tuple[int, httpx.Response]:
    """POST ``body(depth)`` from :data:`TOO_DEEP` down; the first answer that is not a 400.

    That is the deepest metadata the gateway can still decode in its request
    handler: the one that used to pass the decoder, then blow the stack
    when validated or encoded for Redis (a 500).
    """
    for depth in range(TOO_DEEP, METADATA_MAX_DEPTH, -1):
        response = await client.post(path, content=body(depth), headers=headers)
        if not too_deep_to_decode(response):
            return depth, response
    raise AssertionError("no metadata depth decoded")


async def test_metadata_nested_too_deeply_is_a_422(
    sqlite_gateway: RunningGateway, tenant: str
) -> None:
    headers = {**sqlite_gateway.auth(tenant), **JSON}
    async with sqlite_gateway.client() as client:
        r = await client.post(
            "/v1/notifications",
            content=with_deep_metadata(tenant, METADATA_MAX_DEPTH + 1),
            headers=headers,
        )
        assert metadata_errors(assert_problem(r, 422))
        depth, r = await post_deepest_decodable(
            client, "/v1/notifications", headers, lambda d: with_deep_metadata(tenant, d)
        )
        assert depth > 900
        assert metadata_errors(assert_problem(r, 422)), depth
        at_bound = notification(tenant, metadata=deep_metadata(METADATA_MAX_DEPTH))
        r = await client.post("/v1/notifications", json=at_bound, headers=headers)
        assert r.status_code == 202, r.text
        stored = await client.get(f"/v1/notifications/{r.json()['id']}", headers=headers)
    assert stored.json()["metadata"] == deep_metadata(METADATA_MAX_DEPTH)


def batch_of_three(tenant: str, depth: int) -> bytes:
    """``{"notifications": [good, deep, good]}`` with the middle item's metadata ``depth`` deep."""
    items = [
        json.dumps(notification(tenant, content="first")).encode(),
        with_deep_metadata(tenant, depth),
        json.dumps(notification(tenant, content="third")).encode(),
    ]
    return b'{"notifications": [' + b",".join(items) + b"]}"


async def test_one_deep_batch_item_is_refused_alone(
    sqlite_gateway: RunningGateway, tenant: str
) -> None:
    headers = {**sqlite_gateway.auth(tenant), **JSON}
    async with sqlite_gateway.client() as client:
        depth, r = await post_deepest_decodable(
            client, "/v1/notifications:batch", headers, lambda d: batch_of_three(tenant, d)
        )
        assert depth > 900
        assert r.status_code == 202, r.text
        first, deep, third = r.json()["results"]
        assert deep["error"]["status"] == 422
        assert metadata_errors(deep["error"])
        for result, content in ((first, "first"), (third, "third")):
            stored = await client.get(f"/v1/notifications/{result['id']}", headers=headers)
            assert stored.status_code == 200
            assert stored.json()["content"] == content


async def test_null_metadata_is_a_422_like_any_other_non_object(
    sqlite_gateway: RunningGateway, tenant: str
) -> None:
    async with sqlite_gateway.client() as client:
        r = await client.post(
            "/v1/notifications",
            json=notification(tenant, metadata=None),
            headers=sqlite_gateway.auth(tenant),
        )
    problem = assert_problem(r, 422)
    assert metadata_errors(problem) == ["must be a JSON object"]


def with_deep_field(base: dict[str, Any], field: str, depth: int) -> bytes:
    """``base`` with ``field`` set to arrays ``depth`` deep, as JSON bytes."""
    placeholder = "__deep__"
    body = json.dumps({**base, field: placeholder})
    return body.replace(f'"{placeholder}"', "[" * depth + "]" * depth).encode()


@pytest.mark.parametrize("field", ["tenant_id", "content", "priority", "extra"])
async def test_the_deepest_decodable_value_in_any_field_is_a_422(
    sqlite_gateway: RunningGateway, tenant: str, field: str
) -> None:
    headers = {**sqlite_gateway.auth(tenant), **JSON}
    async with sqlite_gateway.client() as client:
        _, r = await post_deepest_decodable(
            client,
            "/v1/notifications",
            headers,
            lambda d: with_deep_field(notification(tenant), field, d),
        )
    problem = assert_problem(r, 422)
    assert [e["field"] for e in problem["errors"]] == [field]  # type: ignore[attr-defined]


@pytest.mark.parametrize("field", ["ids", "reason", "dry_run", "extra"])
async def test_the_deepest_decodable_value_in_a_replay_field_is_a_422(
    admin_gateway: RunningGateway, tenant: str, field: str
) -> None:
    headers = {**admin_gateway.auth(tenant, scopes=ADMIN_SCOPES), **JSON}
    async with admin_gateway.client() as client:
        _, r = await post_deepest_decodable(
            client,
            "/v1/admin/dlq/replay",
            headers,
            lambda d: with_deep_field({"dry_run": True}, field, d),
        )
    problem = assert_problem(r, 422)
    assert [e["field"] for e in problem["errors"]] == [field]  # type: ignore[attr-defined]
