from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.envelope import (
    SCHEMA_VERSION,
    Envelope,
    decode_envelope,
    encode_envelope,
    new_traceparent,
    trace_id_of,
)

TRACEPARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"


@given(
    content=st.text(min_size=1, max_size=50),
    metadata=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4),
)
def test_round_trip(content: str, metadata: dict[str, object]) -> None:
    envelope = Envelope(
        id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        tenant_id="t",
        user_id="u",
        channel="c",
        content=content,
        metadata=metadata,
        accepted_at=datetime(2026, 11, 3, 12, 0, 0, 123456, tzinfo=UTC),
        traceparent=TRACEPARENT,
    )
    decoded = decode_envelope(encode_envelope(envelope))
    assert decoded == envelope
    assert decoded.schema_version == SCHEMA_VERSION
    assert decoded.to_notification().created_at == envelope.accepted_at


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    raw = (
        b'{"schema_version":1,"id":"i","tenant_id":"t","user_id":"u","channel":"c","content":"x",'
        b'"accepted_at":"2026-01-01T00:00:00Z","traceparent":"tp","added_later":1}'
    )
    assert decode_envelope(raw).content == "x"


def test_missing_required_field_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_envelope(b'{"id":"i"}')


def test_traceparent_continues_a_valid_parent_and_replaces_a_bad_one() -> None:
    child = new_traceparent(TRACEPARENT)
    assert trace_id_of(child) == "a" * 32
    assert child != TRACEPARENT
    for bad in (None, "garbage", "00-" + "0" * 32 + "-" + "b" * 16 + "-01"):
        fresh = new_traceparent(bad)
        assert len(fresh) == 55
        assert fresh.startswith("00-")
        assert trace_id_of(fresh) != "0" * 32
