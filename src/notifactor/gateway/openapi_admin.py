"""The admin part of the OpenAPI document: DLQ, replay, audit log and supervision tree."""

from __future__ import annotations

from typing import Any

from notifactor.domain.dlq_entry import DlqReason
from notifactor.gateway.openapi_parts import (
    BEARER,
    COMMON,
    RETRY_AFTER,
    json_body,
    json_ok,
    page_of,
    problem,
    query,
)

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}
_UNAVAILABLE = problem(
    "Storage, Redis or the DLQ service is unavailable here, or Redis is too slow to "
    "answer; retry after `Retry-After` seconds.",
    {"Retry-After": RETRY_AFTER},
)


def admin_schemas() -> dict[str, Any]:
    """Component schemas of the admin endpoints."""
    reasons = [r.value for r in DlqReason]
    return {
        "DeadLetters": page_of(
            {
                "dlq_id": {"type": "string"},
                "notification_id": {"type": "string"},
                "tenant_id": {"type": "string"},
                "user_id": {"type": "string"},
                "channel": {"type": "string"},
                "reason": {"type": "string", "enum": reasons},
                "attempts": {"type": "integer"},
                "last_error": _NULLABLE_STRING,
                "first_attempt_at": _TIME,
                "last_attempt_at": _TIME,
                "dead_at": _TIME,
                "trace_id": _NULLABLE_STRING,
            }
        ),
        "ReplayRequest": {
            "type": "object",
            "additionalProperties": False,
            "description": "Either `ids` or a filter; always narrowed to the token's tenant.",
            "properties": {
                "ids": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1000,
                    "items": {"type": "string"},
                },
                "reason": {"type": "string", "enum": reasons},
                "since": _TIME,
                "until": _TIME,
                "dry_run": {"type": "boolean", "default": False},
                "rate_per_s": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "ReplayReport": {
            "type": "object",
            "properties": {
                "dry_run": {"type": "boolean"},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "dlq_id": {"type": "string"},
                            "notification_id": _NULLABLE_STRING,
                            "tenant_id": _NULLABLE_STRING,
                            "reason": {"type": "string"},
                            "action": {"type": "string"},
                        },
                    },
                },
            },
        },
        "AuditEvents": page_of(
            {
                "event_id": {"type": "string"},
                "event_type": {
                    "type": "string",
                    "examples": [
                        "notifications.accepted",
                        "request.rejected",
                        "dlq.replay",
                    ],
                },
                "event_time": _TIME,
                "metadata": {"type": "object"},
            }
        ),
        "TenantPolicy": {
            "type": "object",
            "properties": {
                "tenant_id": {"type": "string"},
                "source": {"type": "string", "enum": ["tenant", "default"]},
                "policy": {
                    "type": "object",
                    "properties": {
                        "rate_per_s": {"type": "number"},
                        "burst": {"type": "integer"},
                        "daily_quota": {"type": "integer", "description": "0 = no quota"},
                        "max_ws_connections": {"type": "integer"},
                        "max_attempts": {"type": "integer"},
                        "retry_base_ms": {"type": "integer"},
                        "retry_cap_ms": {"type": "integer"},
                        "retention_days": {"type": "integer"},
                    },
                },
            },
        },
        "SupervisionTree": {
            "type": "object",
            "description": "A supervision node: id, kind, state, restarts, last crash, "
            "mailbox depths and its children (same shape, recursively).",
        },
    }


def admin_paths() -> dict[str, Any]:
    """Paths under ``/v1/admin/`` (scope ``admin``, the token's own tenant)."""
    return {
        "/v1/admin/dlq": {
            "get": {
                "summary": "The tenant's dead letters, newest first, cursor-paged",
                "security": BEARER,
                "parameters": [
                    query("limit", _LIMIT),
                    query("cursor", {"type": "string"}),
                    query("reason", {"type": "string", "enum": [r.value for r in DlqReason]}),
                ],
                "responses": {
                    "200": json_ok("One page.", "DeadLetters"),
                    "422": problem("Invalid query parameters."),
                    "503": _UNAVAILABLE,
                    **COMMON,
                },
            }
        },
        "/v1/admin/dlq/replay": {
            "post": {
                "summary": "Replay the tenant's matching dead letters (idempotent, audited)",
                "security": BEARER,
                "requestBody": json_body("ReplayRequest"),
                "responses": {
                    "200": json_ok("What was (or would be) replayed.", "ReplayReport"),
                    "400": problem("Body is not JSON."),
                    "413": problem("Body over the size limit."),
                    "415": problem("Content-Type is not JSON."),
                    "422": problem("Validation failed; `errors` lists every failing field."),
                    "503": _UNAVAILABLE,
                    **COMMON,
                },
            }
        },
        "/v1/admin/audit": {
            "get": {
                "summary": "The tenant's audit log, newest first, cursor-paged",
                "description": "Accepted requests and auth or policy refusals, summarised per "
                "window; DLQ replays.",
                "security": BEARER,
                "parameters": [
                    query("since", _TIME),
                    query("until", _TIME),
                    query("limit", _LIMIT),
                    query("cursor", {"type": "string"}),
                ],
                "responses": {
                    "200": json_ok("One page.", "AuditEvents"),
                    "400": problem("Invalid cursor."),
                    "422": problem("Invalid query parameters."),
                    "503": _UNAVAILABLE,
                    **COMMON,
                },
            }
        },
        "/v1/admin/policy": {
            "get": {
                "summary": "The limits and retry policy that apply to the tenant (from configuration)",
                "security": BEARER,
                "responses": {"200": json_ok("The effective policy.", "TenantPolicy"), **COMMON},
            }
        },
        "/v1/admin/tree": {
            "get": {
                "summary": "The live supervision tree of this process",
                "description": "Loopback clients without a token may read it (configurable); "
                "otherwise a token with scope `admin` of one of the operator tenants "
                "(`observability.tree_operator_tenants`).",
                "security": [*BEARER, {}],
                "responses": {
                    "200": json_ok("The tree.", "SupervisionTree"),
                    "503": problem(
                        "The supervision tree is not running.", {"Retry-After": RETRY_AFTER}
                    ),
                    **COMMON,
                },
            }
        },
    }
