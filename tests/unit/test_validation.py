from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from notifactor.config import LimitsConfig
from notifactor.gateway.validation import (
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
