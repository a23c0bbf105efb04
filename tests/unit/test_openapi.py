"""The OpenAPI document describes exactly the routes the gateway serves."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

from notifactor.config import Config, LimitsConfig
from notifactor.gateway import routes_health
from notifactor.gateway.app import ROUTES, resolve
from notifactor.gateway.http import Request
from notifactor.gateway.openapi import openapi_document
from notifactor.gateway.validation import METADATA_MAX_DEPTH

METHODS = {"get", "post", "put", "patch", "delete"}


def sample_path(template: str) -> str:
    """A concrete path for an OpenAPI path template (``{x}`` becomes a plausible id)."""
    return re.sub(r"\{[^}]+\}", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", template)


def test_every_route_and_method_is_documented_and_nothing_else() -> None:
    doc = openapi_document()
    documented: set[tuple[str, str]] = set()
    for template, operations in doc["paths"].items():
        for method in set(operations) & METHODS:
            name, handler, _params, _allowed = resolve(method.upper(), sample_path(template))
            assert handler is not None, f"{method.upper()} {template} is not served"
            documented.add((name, method.upper()))
    served = {(route.name, method) for route in ROUTES for method in route.methods}
    assert documented == served


def test_every_operation_documents_its_errors_and_refs_resolve() -> None:
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    for template, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert responses, f"{method} {template} has no responses"
            if operation.get("security"):
                assert {"401", "403", "405"} <= set(responses), f"{method} {template}"
    refs = re.findall(r"#/components/schemas/(\w+)", repr(doc))
    assert refs
    assert set(refs) <= set(schemas)


def test_storage_reads_document_their_503() -> None:
    paths = openapi_document()["paths"]
    for template in (
        "/v1/notifications/{id}",
        "/v1/tenants/{tenantId}/deliveries",
        "/v1/admin/audit",
    ):
        assert "503" in paths[template]["get"]["responses"], template


def test_accepted_writes_document_their_rate_headers() -> None:
    paths = openapi_document()["paths"]
    single = paths["/v1/notifications"]["post"]["responses"]
    batch = paths["/v1/notifications:batch"]["post"]["responses"]
    rate = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
    assert rate | {"Location"} <= set(single["202"]["headers"])
    assert rate | {"Retry-After"} <= set(batch["202"]["headers"])
    assert rate | {"Retry-After"} <= set(single["429"]["headers"])


def test_the_batch_documents_only_what_it_answers() -> None:
    """Limits and shedding refuse a batch's items one by one, inside the 202."""
    responses = openapi_document()["paths"]["/v1/notifications:batch"]["post"]["responses"]
    assert "429" not in responses
    assert "Retry-After" in responses["503"]["headers"]


def test_every_503_documents_retry_after() -> None:
    for template, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            unavailable = operation["responses"].get("503")
            if unavailable is not None:
                assert "Retry-After" in unavailable.get("headers", {}), (method, template)


def test_batch_item_problems_document_retry_after() -> None:
    problem = openapi_document()["components"]["schemas"]["Problem"]
    assert problem["properties"]["retry_after"]["type"] == "integer"


def test_the_document_describes_the_configured_limits() -> None:
    limits = LimitsConfig(
        content_max_bytes=1000, metadata_max_bytes=2048, batch_max_items=7, body_max_bytes=4096
    )
    doc = openapi_document(limits)
    schemas = doc["components"]["schemas"]
    notification = schemas["NotificationIn"]["properties"]
    assert schemas["Batch"]["properties"]["notifications"]["maxItems"] == 7
    assert "1..1000 UTF-8 bytes" in notification["content"]["description"]
    assert "2048 bytes" in notification["metadata"]["description"]
    assert f"{METADATA_MAX_DEPTH} levels" in notification["metadata"]["description"]
    batch = doc["paths"]["/v1/notifications:batch"]["post"]
    assert "up to 7 notifications" in batch["summary"]
    for text in ("500", "8192", "4 KiB"):
        assert text not in repr(schemas["NotificationIn"]) + repr(schemas["Batch"]), text
    default = openapi_document()["components"]["schemas"]["Batch"]
    assert default["properties"]["notifications"]["maxItems"] == LimitsConfig().batch_max_items


def test_metadata_is_an_object_never_null() -> None:
    """A ``null`` metadata is refused (422) like any other non-object, as the schema says."""
    metadata = openapi_document()["components"]["schemas"]["NotificationIn"]["properties"][
        "metadata"
    ]
    assert metadata["type"] == "object"


def test_the_idempotency_key_describes_batch_items_as_they_are() -> None:
    operations = openapi_document()["paths"]
    for template in ("/v1/notifications", "/v1/notifications:batch"):
        (idem,) = [
            p for p in operations[template]["post"]["parameters"] if p["name"] == "Idempotency-Key"
        ]
        description = idem["description"]
        assert "#<i>" not in description
        assert "never" in description  # a batch item never matches a single request's key


async def test_the_served_document_follows_the_gateway_config() -> None:
    config = Config(limits=LimitsConfig(batch_max_items=7))
    gateway: Any = SimpleNamespace(config=config)

    async def no_body() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    request = Request(
        scope={"type": "http", "method": "GET", "path": "/openapi.json"}, receive=no_body
    )
    response = await routes_health.openapi(gateway, request)
    served = json.loads(response.body)
    assert served["components"]["schemas"]["Batch"]["properties"]["notifications"]["maxItems"] == 7
