"""The OpenAPI 3.1 description of the REST API (SPEC §4), served at ``/openapi.json``."""

from __future__ import annotations

from functools import cache
from typing import Any

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
from notifactor.gateway.validation import PRIORITIES

_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
_CHANNEL_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


@cache
def openapi_document() -> dict[str, Any]:
    """The document (built once)."""
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
                "description": "1..8192 UTF-8 bytes (configurable)",
            },
            "priority": {"type": "string", "enum": list(PRIORITIES), "default": "normal"},
            "metadata": {"type": "object", "description": "At most 4 KiB encoded."},
        },
    }
    states = [s.value for s in DeliveryState]
    idem = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": "Same key, same tenant, within 24 h: same id, no second delivery. "
        "In a batch, item i uses `<key>#<i>`.",
    }
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
                            "maxItems": 500,
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
                    },
                }
            },
            "/v1/notifications:batch": {
                "post": {
                    "summary": "Accept up to 500 notifications; per-item results in request order",
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
