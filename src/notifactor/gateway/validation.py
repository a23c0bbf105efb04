"""Strict, hand-checked schemas of the request bodies (SPEC §4).

Hand-checked rather than decoded into a typed Struct so that one response
lists *every* failing field, not just the first one the decoder met.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import attrs
import msgspec

from notifactor.config import LimitsConfig
from notifactor.domain.identifiers import check_channel, check_tenant_id, check_user_id
from notifactor.gateway.problems import FieldError

PRIORITIES: Final = ("low", "normal", "high", "critical")
NOTIFICATION_FIELDS: Final = frozenset(
    {"tenant_id", "user_id", "channel", "content", "priority", "metadata"}
)
REQUIRED_FIELDS: Final = ("tenant_id", "user_id", "channel", "content")
IDEMPOTENCY_KEY_MAX = 255
#: Deepest nesting of ``metadata`` (the object itself is level 1). A few KiB
#: of ``[[[...]]]`` nest about a thousand levels, past the interpreter's
#: recursion limit, and every later encode of the envelope (the size check,
#: the Redis stream entry, storage, the WebSocket frame) would fail on it.
METADATA_MAX_DEPTH: Final = 32


@attrs.frozen(kw_only=True)
class NotificationInput:
    """A notification body that passed validation."""

    tenant_id: str
    user_id: str
    channel: str
    content: str
    priority: str
    metadata: dict[str, Any]


def validate_notification(
    body: object, limits: LimitsConfig, *, prefix: str = ""
) -> NotificationInput | list[FieldError]:
    """The checked notification, or every problem with ``body``.

    Args:
        body: the decoded JSON value.
        limits: content and metadata size limits.
        prefix: prepended to field names (``"notifications[3]."`` in a batch).
    """
    if not isinstance(body, dict):
        return [FieldError(field=prefix.rstrip(".") or "$", message="must be a JSON object")]
    errors: list[FieldError] = []

    def fail(name: str, message: str) -> None:
        errors.append(FieldError(field=prefix + name, message=message))

    for name in sorted(set(body) - NOTIFICATION_FIELDS):
        fail(name, "unknown field")
    for name in REQUIRED_FIELDS:
        if name not in body:
            fail(name, "is required")
    checks = (
        ("tenant_id", check_tenant_id),
        ("user_id", check_user_id),
        ("channel", check_channel),
    )
    for name, check in checks:
        if name in body:
            value = body[name]
            if not isinstance(value, str):
                fail(name, "must be a string")
            elif (reason := check(value)) is not None:
                fail(name, reason)
    if "content" in body:
        content = body["content"]
        if not isinstance(content, str):
            fail("content", "must be a string")
        else:
            size = len(content.encode("utf-8", "surrogatepass"))
            if not 1 <= size <= limits.content_max_bytes:
                fail("content", f"must be 1..{limits.content_max_bytes} UTF-8 bytes, got {size}")
    priority = body.get("priority", "normal")
    if priority not in PRIORITIES or not isinstance(priority, str):
        fail("priority", f"must be one of {', '.join(PRIORITIES)}")
    metadata = body.get("metadata", {})
    if (reason := check_metadata(metadata, limits)) is not None:
        fail("metadata", reason)
    if errors:
        return errors
    return NotificationInput(
        tenant_id=body["tenant_id"],
        user_id=body["user_id"],
        channel=body["channel"],
        content=body["content"],
        priority=priority,
        metadata=metadata,
    )


def check_metadata(metadata: object, limits: LimitsConfig) -> str | None:
    """None when ``metadata`` is a usable metadata value, else the reason.

    An object (``null`` is refused like any other non-object: the field is
    optional, so a client leaves it out), at most :data:`METADATA_MAX_DEPTH`
    levels deep, encoding to at most ``metadata_max_bytes``. The depth is
    checked first, without recursion, so that the size check's encode never
    meets a value too deep for it.
    """
    if not isinstance(metadata, dict):
        return "must be a JSON object"
    if nests_deeper_than(metadata, METADATA_MAX_DEPTH):
        return f"must nest at most {METADATA_MAX_DEPTH} levels of objects and arrays"
    size = len(msgspec.json.encode(metadata))
    if size > limits.metadata_max_bytes:
        return f"must encode to at most {limits.metadata_max_bytes} bytes, got {size}"
    return None


def nests_deeper_than(value: object, max_depth: int) -> bool:
    """Whether decoded JSON ``value`` nests objects and arrays more than ``max_depth`` levels.

    ``value`` itself, when an object or array, is level 1. Walks with an
    explicit stack, never recursion, so any depth the decoder produced is
    measured safely; stops at the first container past the bound.
    """
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict):
            children: Iterable[object] = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > max_depth:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


#: Separates a batch's key from an item's index in the item's own idempotency
#: key. A client's key is printable ASCII, so it never holds this character,
#: and no single request's key can equal a batch item's.
BATCH_ITEM_KEY_SEPARATOR = "\x1f"


def batch_item_key(key: str, index: int) -> str:
    """The idempotency key of item ``index`` of a batch sent with ``key``."""
    return f"{key}{BATCH_ITEM_KEY_SEPARATOR}{index}"


def check_idempotency_key(value: str) -> str | None:
    """None when ``value`` is a usable ``Idempotency-Key``, else the reason."""
    if not 1 <= len(value) <= IDEMPOTENCY_KEY_MAX:
        return f"must be 1..{IDEMPOTENCY_KEY_MAX} characters"
    if not value.isprintable() or not value.isascii():
        return "must be printable ASCII"
    return None
