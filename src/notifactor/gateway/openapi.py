"""The OpenAPI 3.1 description of the REST API (SPEC §4), served at ``/openapi.json``."""

from __future__ import annotations

from functools import cache
from typing import Any

from notifactor.config import LimitsConfig
from notifactor.domain.delivery_state import DeliveryState
from notifactor.gateway.openapi_admin import admin_paths, admin_schemas
from notifactor.gateway.openapi_parts import (
    BATCH_RETRY_AFTER,
    BATCH_WRITE_ERRORS,
    BEARER,
    COMMON,
    RATE_HEADERS,
    RETRY_AFTER,
    SINGLE_WRITE_ERRORS,
    json_body,
    json_ok,
    page_of,
    problem,
    query,
)
from notifactor.gateway.validation import METADATA_MAX_DEPTH, PRIORITIES

_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
_CHANNEL_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
#: What the document describes when not given a gateway's configured limits.
_DEFAULT_LIMITS = LimitsConfig()


def _duration(seconds: int) -> str:
    """``seconds`` for people: whole hours as ``24 h``, anything else in seconds."""
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds} s"


def _idempotency_key(limits: LimitsConfig) -> dict[str, Any]:
    """The ``Idempotency-Key`` header, as the gateway really keys single requests and batches.

    A batch's item ``i`` is recorded under the batch's key and ``i`` joined by
    a separator no header can hold
    (:func:`~notifactor.gateway.validation.batch_item_key`), so it never
    matches a single request's key, nor an item of another index.
    """
    ttl = _duration(limits.idempotency_ttl_s)
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": "1..255 printable ASCII characters. Same key, same tenant, within "
        f"{ttl}: same id, no second delivery. A batch's key covers its items one by one: "
        "item i is remembered under the batch's key and its index, so the same batch "
        "retried with the same key answers the same id at the same position. A batch "
        "item never matches a single request's key (`order-7#0` sent alone is another "
        "request than item 0 of a batch keyed `order-7`), nor an item at another "
        "index. A request or item refused by validation, a rate limit or quota, or load "
        "shedding is not remembered: retried, it is judged afresh.",
    }


@cache
def openapi_document(limits: LimitsConfig = _DEFAULT_LIMITS) -> dict[str, Any]:
    """The document for the gateway's configured ``limits`` (built once per limits).

    The size and count limits come from configuration (``[limits]``), so the
    document states the ones this gateway enforces, not the defaults.
    """
    notification_in: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["tenant_id", "user_id", "channel", "content"],
        "properties": {
            "tenant_id": {"type": "string", "pattern": _ID_PATTERN},
            "user_id": {"type": "string", "pattern": _ID_PATTERN},
            "channel": {"type": "string", "pattern": _CHANNEL_PATTERN},
            "content": {
                "type": "string",
                "minLength": 1,
                "description": f"1..{limits.content_max_bytes} UTF-8 bytes.",
            },
            "priority": {"type": "string", "enum": list(PRIORITIES), "default": "normal"},
            "metadata": {
                "type": "object",
                "description": "Optional; when present an object (`null` is refused, 422). "
                f"At most {limits.metadata_max_bytes} bytes encoded as JSON, and objects "
                f"and arrays nested at most {METADATA_MAX_DEPTH} levels deep (the "
                "metadata object itself is level 1).",
            },
        },
    }
    states = [s.value for s in DeliveryState]
    idem = _idempotency_key(limits)
    return {
        "openapi": "3.1.0",
        "info": {"title": "notifactor", "version": "1.0.0"},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "retry_after": {
                            "type": "integer",
                            "description": "Batch items refused for a limit or load "
                            "shedding: seconds to wait before retrying the item (what "
                            "`Retry-After` says for a single request).",
                        },
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "NotificationIn": notification_in,
                "Batch": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["notifications"],
                    "properties": {
                        "notifications": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": limits.batch_max_items,
                            "items": {"$ref": "#/components/schemas/NotificationIn"},
                        }
                    },
                },
                "Accepted": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "status": {"const": "accepted"}},
                },
                "BatchResults": {
                    "type": "object",
                    "properties": {
                        "results": {
                            "type": "array",
                            "items": {
                                "oneOf": [
                                    {
                                        "type": "object",
                                        "required": ["id"],
                                        "properties": {"id": {"type": "string"}},
                                    },
                                    {
                                        "type": "object",
                                        "required": ["error"],
                                        "properties": {
                                            "error": {"$ref": "#/components/schemas/Problem"}
                                        },
                                    },
                                ]
                            },
                        }
                    },
                },
                "Notification": {
                    "type": "object",
                    "properties": {
                        **notification_in["properties"],
                        "id": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                        "status": {"type": "string", "enum": states},
                        "attempts": {"type": "integer"},
                        "last_error": {"type": ["string", "null"]},
                    },
                },
                "Deliveries": page_of(
                    {
                        "notification_id": {"type": "string"},
                        "user_id": {"type": "string"},
                        "channel": {"type": "string"},
                        "state": {"type": "string", "enum": states},
                        "attempts": {"type": "integer"},
                        "last_error": {"type": ["string", "null"]},
                        "updated_at": {"type": "string", "format": "date-time"},
                    }
                ),
                **admin_schemas(),
            },
        },
        "paths": {
            "/v1/notifications": {
                "post": {
                    "summary": "Accept one notification",
                    "security": BEARER,
                    "parameters": [idem],
                    "requestBody": json_body("NotificationIn"),
                    "responses": {
                        "202": {
                            **json_ok("Accepted and durably enqueued.", "Accepted"),
                            "headers": {
                                "Location": {"schema": {"type": "string"}},
                                **RATE_HEADERS,
                            },
                        },
                        **COMMON,
                        **SINGLE_WRITE_ERRORS,
                        "413": problem(f"Body over {limits.body_max_bytes} bytes."),
                    },
                }
            },
            "/v1/notifications:batch": {
                "post": {
                    "summary": f"Accept up to {limits.batch_max_items} notifications; "
                    "per-item results in request order",
                    "security": BEARER,
                    "parameters": [idem],
                    "requestBody": json_body("Batch"),
                    "responses": {
                        "202": {
                            **json_ok(
                                "Per-item results; limits and load shedding refuse items "
                                "one by one (429 or 503 problems with `retry_after`).",
                                "BatchResults",
                            ),
                            "headers": {**RATE_HEADERS, "Retry-After": BATCH_RETRY_AFTER},
                        },
                        **COMMON,
                        **BATCH_WRITE_ERRORS,
                        "413": problem(f"Body over {limits.batch_body_max_bytes} bytes."),
                    },
                }
            },
            "/v1/notifications/{id}": {
                "get": {
                    "summary": "A notification and its delivery status",
                    "security": BEARER,
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": json_ok("The notification.", "Notification"),
                        "404": problem("Unknown, or another tenant's (never revealed)."),
                        "503": problem(
                            "Not in storage yet, and the accepted record cannot be read: "
                            "storage or Redis unreachable, or Redis too slow to answer.",
                            {"Retry-After": RETRY_AFTER},
                        ),
                        **COMMON,
                    },
                }
            },
            "/v1/tenants/{tenantId}/deliveries": {
                "get": {
                    "summary": "Deliveries of a tenant, newest first, cursor-paged",
                    "security": BEARER,
                    "parameters": [
                        {
                            "name": "tenantId",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        query("user_id", {"type": "string", "pattern": _ID_PATTERN}),
                        query("state", {"type": "string", "enum": states}),
                        query("since", {"type": "string", "format": "date-time"}),
                        query("until", {"type": "string", "format": "date-time"}),
                        query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                        ),
                        query("cursor", {"type": "string"}),
                    ],
                    "responses": {
                        "200": json_ok("One page.", "Deliveries"),
                        "400": problem("Invalid cursor."),
                        "422": problem("Invalid query parameters."),
                        "503": problem("Storage unavailable.", {"Retry-After": RETRY_AFTER}),
                        **COMMON,
                    },
                }
            },
            **admin_paths(),
            "/health/live": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "Running."}}}
            },
            "/health": {
                "get": {
                    "summary": "Readiness: redis, storage, supervision",
                    "responses": {
                        "200": {"description": "All checks ok."},
                        "503": {
                            "description": "A check failed; the body names it.",
                            "headers": {"Retry-After": RETRY_AFTER},
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1."}},
                }
            },
        },
    }
