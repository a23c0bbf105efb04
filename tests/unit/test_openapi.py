"""The OpenAPI document describes exactly the routes the gateway serves."""

from __future__ import annotations

import re

from notifactor.gateway.app import ROUTES, resolve
from notifactor.gateway.openapi import openapi_document

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
