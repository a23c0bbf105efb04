"""Building blocks of the OpenAPI document: problem responses, headers, parameters."""

from __future__ import annotations

from typing import Any


def problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    if headers:
        response["headers"] = headers
    return response


def header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "integer", "minimum": 0}}


RATE_HEADERS = {
    "RateLimit-Limit": header("The limit closer to running out: the burst, or the daily quota."),
    "RateLimit-Remaining": header("Requests that limit admits right now."),
    "RateLimit-Reset": header("Seconds until that limit is whole again (the quota: UTC midnight)."),
}
RETRY_AFTER = header("Seconds to wait before retrying.")
BATCH_RETRY_AFTER = header(
    "Present when an item was refused for a limit or load shedding: the shortest "
    "`retry_after` among the refused items."
)
UNAVAILABLE_503 = problem(
    "Redis unreachable or too slow to answer (`unavailable`); retry after `Retry-After` "
    "seconds. Redis may have taken what was sent: retry with the same Idempotency-Key.",
    {"Retry-After": RETRY_AFTER},
)
COMMON = {
    "401": problem(
        "Missing, malformed, expired or badly signed token.",
        {
            "WWW-Authenticate": {
                "schema": {"type": "string"},
                "description": 'Bearer error="invalid_token"',
            }
        },
    ),
    "403": problem("Missing scope, or a tenant that is not the token's."),
    "405": problem("Method not allowed on this path; `Allow` lists the ones that are."),
    "500": problem("Unexpected error (logged)."),
}
WRITE_ERRORS = {
    "400": problem("Body is not JSON, or a bad Idempotency-Key."),
    "413": problem("Body over the size limit."),
    "415": problem("Content-Type is not JSON."),
    "422": problem("Validation failed; `errors` lists every failing field."),
}
SINGLE_WRITE_ERRORS = {
    **WRITE_ERRORS,
    "429": problem(
        "Rate limit or daily quota exceeded.", {"Retry-After": RETRY_AFTER, **RATE_HEADERS}
    ),
    "503": problem(
        "Pipeline saturated (`overloaded`), or Redis unreachable or too slow to answer "
        "(`unavailable`); retry after `Retry-After` seconds.",
        {"Retry-After": RETRY_AFTER},
    ),
}
BATCH_WRITE_ERRORS = {**WRITE_ERRORS, "503": UNAVAILABLE_503}
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def json_body(ref: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def json_ok(description: str, ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def page_of(item_properties: dict[str, Any]) -> dict[str, Any]:
    """A cursor-paged listing: ``items`` of objects with ``item_properties``, and ``next_cursor``."""
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": item_properties}},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
