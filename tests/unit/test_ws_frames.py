"""Client frame parsing and server frame encoding (SPEC §5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.cursor import inbox_cursor
from notifactor.domain.ws_frames import (
    Ack,
    FrameProblem,
    Ping,
    Resume,
    Subscribe,
    Unsubscribe,
    error_frame,
    notification_frame,
    parse_client_frame,
    resumed_frame,
    subscribed_frame,
    welcome_frame,
)

CURSOR = inbox_cursor("01a2-id", 1_700_000_000_000_000)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type":"ping"}', Ping()),
        (
            '{"type":"subscribe","channels":["alerts","news","alerts"]}',
            Subscribe(channels=("alerts", "news")),
        ),
        ('{"type":"unsubscribe","channels":["alerts"]}', Unsubscribe(channels=("alerts",))),
        ('{"type":"ack","id":"abc"}', Ack(id="abc")),
        ('{"type":"ping","client_ref":7}', Ping()),
    ],
)
def test_valid_frames(raw: str, expected: object) -> None:
    assert parse_client_frame(raw) == expected


def test_resume_decodes_the_cursor() -> None:
    frame = parse_client_frame(json.dumps({"type": "resume", "since": CURSOR}))
    assert isinstance(frame, Resume)
    assert frame.since == CURSOR
    assert frame.position.key == "01a2-id"
    assert frame.position.time_us == 1_700_000_000_000_000


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ("", "invalid_json"),
        ("[1,2]", "invalid_frame"),
        ('"ping"', "invalid_frame"),
        ("{}", "invalid_frame"),
        ('{"type":7}', "invalid_frame"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":"subscribe"}', "invalid_field"),
        ('{"type":"subscribe","channels":[]}', "invalid_field"),
        ('{"type":"subscribe","channels":"alerts"}', "invalid_field"),
        ('{"type":"subscribe","channels":["bad channel!"]}', "invalid_field"),
        ('{"type":"subscribe","channels":[1]}', "invalid_field"),
        ('{"type":"ack"}', "invalid_field"),
        ('{"type":"ack","id":""}', "invalid_field"),
        ('{"type":"ack","id":42}', "invalid_field"),
        ('{"type":"resume"}', "invalid_field"),
        ('{"type":"resume","since":"garbage"}', "invalid_cursor"),
    ],
)
def test_malformed_frames_are_problems(raw: str, code: str) -> None:
    problem = parse_client_frame(raw)
    assert isinstance(problem, FrameProblem)
    assert problem.code == code
    assert problem.message


def test_binary_frames_are_refused() -> None:
    problem = parse_client_frame(b'{"type":"ping"}')
    assert isinstance(problem, FrameProblem)
    assert problem.code == "invalid_frame"


def test_too_many_channels() -> None:
    raw = json.dumps({"type": "subscribe", "channels": [f"c{i}" for i in range(101)]})
    problem = parse_client_frame(raw)
    assert isinstance(problem, FrameProblem)
    assert problem.code == "invalid_field"


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_parse_never_raises(raw: str | bytes) -> None:
    parse_client_frame(raw)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_json_value_parses_or_is_a_problem(value: object) -> None:
    result = parse_client_frame(json.dumps(value))
    assert isinstance(result, Subscribe | Unsubscribe | Ack | Resume | Ping | FrameProblem)


def test_server_frames() -> None:
    created = datetime(2026, 11, 3, 12, 0, 0, 123456, tzinfo=UTC)
    frame = json.loads(
        notification_frame(
            id="n1",
            channel="alerts",
            content="hé",
            priority="high",
            metadata={"k": [1]},
            created_at=created,
            cursor=CURSOR,
        )
    )
    assert frame == {
        "type": "notification",
        "id": "n1",
        "channel": "alerts",
        "content": "hé",
        "priority": "high",
        "metadata": {"k": [1]},
        "created_at": "2026-11-03T12:00:00.123456Z",
        "cursor": CURSOR,
    }
    assert json.loads(
        welcome_frame(session_id="s", tenant_id="t", user_id="u", heartbeat_s=25.0)
    ) == {
        "type": "welcome",
        "session_id": "s",
        "tenant_id": "t",
        "user_id": "u",
        "heartbeat_s": 25,
    }
    assert json.loads(subscribed_frame(["a", "b"])) == {
        "type": "subscribed",
        "channels": ["a", "b"],
    }
    assert json.loads(resumed_frame(3)) == {"type": "resumed", "count": 3}
    assert json.loads(error_frame(FrameProblem(code="x", message="y"))) == {
        "type": "error",
        "code": "x",
        "message": "y",
    }
