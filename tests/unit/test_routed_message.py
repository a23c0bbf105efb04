"""The delivery-stream message: a ``created_at`` without an offset is refused when decoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from notifactor.domain.routing import RoutedMessage, decode_routed, encode_routed

CREATED = datetime(2026, 11, 3, 12, 0, 0, 123456, tzinfo=UTC)


def message(created_at: datetime = CREATED) -> RoutedMessage:
    return RoutedMessage(
        id="n-1",
        tenant_id="t",
        user_id="u",
        channel="alerts",
        content="hi",
        priority="normal",
        metadata={},
        created_at=created_at,
        cursor="c",
        attempt=1,
        traceparent="",
    )


def test_round_trip_keeps_an_aware_time() -> None:
    assert decode_routed(encode_routed(message())) == message()
    east = CREATED.astimezone(timezone(timedelta(hours=2)))
    decoded = decode_routed(encode_routed(message(east)))
    assert decoded.created_at == CREATED
    assert decoded.created_at.tzinfo is not None


@pytest.mark.parametrize("naive", ["2026-11-03T12:00:00.123456", "2026-11-03T12:00:00"])
def test_a_naive_created_at_is_refused(naive: str) -> None:
    """It would crash the session's merge (``to_us``) and the delivery consumer with it."""
    raw = json.loads(encode_routed(message()))
    raw["created_at"] = naive
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        decode_routed(json.dumps(raw))
