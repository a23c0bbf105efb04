from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from notifactor.config import LimitsConfig
from notifactor.gateway.validation import (
    METADATA_MAX_DEPTH,
    NotificationInput,
    check_idempotency_key,
    validate_notification,
)

LIMITS = LimitsConfig()
GOOD = {"tenant_id": "t", "user_id": "u@x", "channel": "alerts", "content": "hi"}


def fields(result: object) -> set[str]:
    assert isinstance(result, list)
    return {e.field for e in result}


def test_minimal_body_gets_defaults() -> None:
    result = validate_notification(GOOD, LIMITS)
    assert isinstance(result, NotificationInput)
    assert result.priority == "normal"
    assert result.metadata == {}


def test_every_failing_field_is_listed() -> None:
    body = {
        "user_id": 5,
        "channel": "bad channel!",
        "content": "x" * 9000,
        "priority": "p",
        "metadata": [],
        "z": 1,
    }
    assert fields(validate_notification(body, LIMITS)) == {
        "tenant_id",
        "user_id",
        "channel",
        "content",
        "priority",
        "metadata",
        "z",
    }


def test_content_limit_counts_utf8_bytes() -> None:
    assert isinstance(
        validate_notification({**GOOD, "content": "é" * 4096}, LIMITS), NotificationInput
    )
    assert fields(validate_notification({**GOOD, "content": "é" * 4097}, LIMITS)) == {"content"}


def test_metadata_limit() -> None:
    assert fields(validate_notification({**GOOD, "metadata": {"k": "v" * 4096}}, LIMITS)) == {
        "metadata"
    }


def test_batch_prefix_and_non_object() -> None:
    assert fields(validate_notification({**GOOD, "x": 1}, LIMITS, prefix="notifications[2].")) == {
        "notifications[2].x"
    }
    assert fields(validate_notification([1], LIMITS)) == {"$"}


@given(st.text(min_size=1, max_size=300))
def test_idempotency_key_rule(key: str) -> None:
    ok = check_idempotency_key(key) is None
    assert ok == (len(key) <= 255 and key.isascii() and key.isprintable())


def nested_metadata(depth: int) -> dict[str, Any]:
    """A metadata object ``depth`` levels deep (the object itself is level 1)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_metadata_nesting_is_bounded() -> None:
    at_bound = validate_notification(
        {**GOOD, "metadata": nested_metadata(METADATA_MAX_DEPTH)}, LIMITS
    )
    assert isinstance(at_bound, NotificationInput)
    too_deep = {**GOOD, "metadata": nested_metadata(METADATA_MAX_DEPTH + 1)}
    assert fields(validate_notification(too_deep, LIMITS)) == {"metadata"}


def test_metadata_deep_enough_to_exhaust_the_stack_is_refused_not_raised() -> None:
    """About 990 levels fit in 2 KB yet cannot be encoded deep inside a request handler."""
    deep: Any = []
    for _ in range(990):
        deep = [deep]
    result = validate_notification({**GOOD, "metadata": {"a": deep}}, LIMITS, prefix="n[1].")
    assert fields(result) == {"n[1].metadata"}
    assert isinstance(result, list)
    assert "nest" in result[0].message


def test_null_metadata_is_not_an_object() -> None:
    result = validate_notification({**GOOD, "metadata": None}, LIMITS)
    assert fields(result) == {"metadata"}
