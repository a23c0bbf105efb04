"""The JSON line formatter: its cached timestamp and its encoding match the plain ones."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from notifactor.observability.logging import JsonLineFormatter


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("notifactor.test", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


@given(st.lists(st.floats(min_value=0, max_value=4_102_444_800), min_size=1, max_size=5))
def test_the_timestamp_is_iso_8601_utc_to_the_millisecond(instants: list[float]) -> None:
    formatter = JsonLineFormatter("gw-1")
    for created in sorted(instants):  # the per-second cache sees them in order, as a process does
        text = formatter.timestamp(created)
        parsed = datetime.fromisoformat(text)
        assert parsed.tzinfo == UTC
        assert text.endswith("+00:00")
        assert len(text) == len("2026-11-25T21:46:01.123+00:00")
        # Within a millisecond of the instant (the milliseconds are truncated).
        assert 0 <= created - parsed.timestamp() < 0.001 + 1e-6


def test_a_line_is_one_json_object_with_the_context_fields() -> None:
    formatter = JsonLineFormatter("gw-1")
    line = formatter.format(
        _record("POST %s", tenant_id="acme", status=202, duration_ms=1.5, token="secret")
    )
    assert "\n" not in line
    document = json.loads(line)
    assert document["instance_id"] == "gw-1"
    assert (document["tenant_id"], document["status"], document["duration_ms"]) == (
        "acme",
        202,
        1.5,
    )
    assert "token" not in document  # only the context fields are written


def test_values_json_cannot_hold_natively_are_written_as_text() -> None:
    formatter = JsonLineFormatter("gw-1")

    class Reason:
        def __str__(self) -> str:
            return "Redis down: ünïcode"

    document = json.loads(formatter.format(_record("x", reason=Reason(), partition=2**70)))
    assert document["reason"] == "Redis down: ünïcode"
    assert document["partition"] == 2**70
    surrogate = json.loads(formatter.format(_record("bad \udcff byte")))
    assert surrogate["message"].startswith("bad ")
