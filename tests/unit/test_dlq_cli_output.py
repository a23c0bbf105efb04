"""``notifactor dlq``: what it prints and which arguments it refuses before touching Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifactor.adapters.redis_dlq import DlqRecord
from notifactor.cli import main
from notifactor.dispatcher.cli_dlq import record_json
from notifactor.domain.dlq_entry import DlqEntry


def test_a_dead_letter_prints_with_the_api_s_rfc3339_times() -> None:
    whole_second = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
    entry = DlqEntry(
        reason="exhausted",
        notification_id="n1",
        tenant_id="acme",
        attempts=8,
        last_error="boom",
        first_attempt_at=whole_second,
        last_attempt_at=whole_second.replace(microsecond=5),
        trace_id=None,
        source_stream="s:0",
        source_id="1-1",
        dead_at=whole_second,
    )
    printed = record_json(DlqRecord(stream_id="5-0", entry=entry, envelope=None))
    assert printed["first_attempt_at"] == "2026-11-26T02:00:00.000000Z"
    assert printed["last_attempt_at"] == "2026-11-26T02:00:00.000005Z"
    assert printed["dead_at"] == "2026-11-26T02:00:00.000000Z"


@pytest.mark.parametrize("cursor", ["0-0", "99999999999999999999999-0", "²-1", "12-", "abc"])
def test_a_cursor_that_is_not_a_dlq_id_exits_2_with_one_line(
    cursor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "list", "--cursor", cursor]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "notifactor: --cursor: not a DLQ id"
