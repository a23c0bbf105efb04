"""Folding audit notes into summary events (pure, Hypothesis)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.audit import AuditEvent
from notifactor.domain.audit_summary import (
    ACCEPTED,
    REJECTED,
    AuditKey,
    AuditNote,
    summarize,
)
from notifactor.domain.rfc3339 import format_rfc3339, parse_rfc3339

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)

TENANTS = ("acme", "globex")
SUBJECTS = ("", "alice", "bob")
ROUTES = ("notifications", "batch")
REJECT_STATUSES = (401, 403, 429, 503)
REASONS = ("", "rate limited", "token expired", "missing scope")


@st.composite
def note_lists(draw: st.DrawFn) -> list[AuditNote]:
    """Accepted and rejected notes; ids are unique over the whole list."""
    serial = itertools.count()
    notes: list[AuditNote] = []
    for _ in range(draw(st.integers(0, 25))):
        common = {
            "tenant_id": draw(st.sampled_from(TENANTS)),
            "subject": draw(st.sampled_from(SUBJECTS)),
            "route": draw(st.sampled_from(ROUTES)),
            # Not sorted: notes may arrive slightly out of time order.
            "at": T0 + timedelta(milliseconds=draw(st.integers(0, 5_000))),
        }
        if draw(st.booleans()):
            new = draw(st.integers(0, 6))
            duplicates = draw(st.integers(0 if new else 1, 4))
            ids = tuple(f"n{next(serial)}" for _ in range(new))
            dups = tuple(f"d{next(serial)}" for _ in range(duplicates))
            notes.append(
                AuditNote(
                    event_type=ACCEPTED,
                    status=202,
                    ids=ids,
                    duplicates=dups,
                    count=len(ids) + len(dups),
                    **common,  # type: ignore[arg-type]
                )
            )
        else:
            notes.append(
                AuditNote(
                    event_type=REJECTED,
                    status=draw(st.sampled_from(REJECT_STATUSES)),
                    reason=draw(st.sampled_from(REASONS)),
                    count=draw(st.integers(1, 5)),
                    **common,  # type: ignore[arg-type]
                )
            )
    return notes


def id_source() -> tuple[Callable[[], str], list[str]]:
    made: list[str] = []
    serial = itertools.count()

    def new_id() -> str:
        made.append(f"e{next(serial)}")
        return made[-1]

    return new_id, made


def key_of(event: AuditEvent) -> AuditKey:
    meta = event.metadata
    return (
        event.tenant_id,
        event.event_type,
        meta["subject"],
        meta["route"],
        meta["status"],
        meta.get("reason", ""),
    )


def by_key(events: list[AuditEvent]) -> dict[AuditKey, list[AuditEvent]]:
    grouped: dict[AuditKey, list[AuditEvent]] = defaultdict(list)
    for event in events:
        grouped[key_of(event)].append(event)
    return grouped


def notes_by_key(notes: list[AuditNote]) -> dict[AuditKey, list[AuditNote]]:
    grouped: dict[AuditKey, list[AuditNote]] = defaultdict(list)
    for note in notes:
        grouped[note.key].append(note)
    return grouped


summaries = given(note_lists(), st.integers(1, 10))


@summaries
def test_counts_per_key_add_up(notes: list[AuditNote], max_ids: int) -> None:
    new_id, _ = id_source()
    events = by_key(summarize(notes, max_ids=max_ids, new_id=new_id))
    expected = notes_by_key(notes)
    assert events.keys() == expected.keys()
    for key, key_notes in expected.items():
        assert sum(e.metadata["count"] for e in events[key]) == sum(n.count for n in key_notes)


@summaries
def test_every_id_is_listed_exactly_once_in_order(notes: list[AuditNote], max_ids: int) -> None:
    new_id, _ = id_source()
    events = summarize(notes, max_ids=max_ids, new_id=new_id)
    listed = [i for e in events for i in e.metadata.get("notification_ids", [])]
    duplicates = [i for e in events for i in e.metadata.get("duplicate_ids", [])]
    assert sorted(listed) == sorted(i for n in notes for i in n.ids)
    assert sorted(duplicates) == sorted(i for n in notes for i in n.duplicates)
    assert len(set(listed)) == len(listed)
    assert len(set(duplicates)) == len(duplicates)
    # Within a key the ids keep their arrival order.
    grouped = by_key(events)
    for key, key_notes in notes_by_key(notes).items():
        assert [i for e in grouped[key] for i in e.metadata.get("notification_ids", [])] == [
            i for n in key_notes for i in n.ids
        ]
        assert [i for e in grouped[key] for i in e.metadata.get("duplicate_ids", [])] == [
            i for n in key_notes for i in n.duplicates
        ]


@summaries
def test_no_event_lists_more_than_max_ids(notes: list[AuditNote], max_ids: int) -> None:
    new_id, _ = id_source()
    events = summarize(notes, max_ids=max_ids, new_id=new_id)
    for event in events:
        ids = event.metadata.get("notification_ids", []) + event.metadata.get("duplicate_ids", [])
        assert len(ids) <= max_ids
        if event.event_type == ACCEPTED:
            # Each accepted event counts exactly the ids it carries.
            assert event.metadata["count"] == len(ids)
    # A key is split only as far as needed, and no event is empty after a split.
    for key, key_notes in notes_by_key(notes).items():
        total = sum(len(n.ids) + len(n.duplicates) for n in key_notes)
        assert len(by_key(events)[key]) == max(1, math.ceil(total / max_ids))


@summaries
def test_times(notes: list[AuditNote], max_ids: int) -> None:
    new_id, _ = id_source()
    grouped = by_key(summarize(notes, max_ids=max_ids, new_id=new_id))
    for key, key_notes in notes_by_key(notes).items():
        for event in grouped[key]:
            # As the API writes every time: UTC, microseconds, "Z".
            first_at = parse_rfc3339(event.metadata["first_at"])
            last_at = parse_rfc3339(event.metadata["last_at"])
            assert event.metadata["first_at"] == format_rfc3339(first_at)
            assert event.metadata["last_at"] == format_rfc3339(last_at)
            assert first_at <= last_at
            assert event.event_time == min(n.at for n in key_notes)
            assert first_at == min(n.at for n in key_notes)
            assert last_at == max(n.at for n in key_notes)


@summaries
def test_metadata_by_event_type(notes: list[AuditNote], max_ids: int) -> None:
    new_id, _ = id_source()
    for event in summarize(notes, max_ids=max_ids, new_id=new_id):
        meta = event.metadata
        assert event.event_type in (ACCEPTED, REJECTED)
        if event.event_type == REJECTED:
            assert "notification_ids" not in meta
            assert "duplicate_ids" not in meta
            assert meta["count"] >= 1
        else:
            assert isinstance(meta["notification_ids"], list)
            assert isinstance(meta["duplicate_ids"], list)
            assert meta["status"] == 202
        reason = meta.get("reason")
        assert reason is None or reason != ""
    rejected_reasons = {n.key: n.reason for n in notes if n.event_type == REJECTED}
    grouped = by_key(summarize(notes, max_ids=max_ids, new_id=id_source()[0]))
    for key, reason in rejected_reasons.items():
        for event in grouped[key]:
            assert event.metadata.get("reason", "") == reason
            assert ("reason" in event.metadata) == bool(reason)


@summaries
def test_event_ids_come_from_new_id_and_are_unique(notes: list[AuditNote], max_ids: int) -> None:
    new_id, made = id_source()
    events = summarize(notes, max_ids=max_ids, new_id=new_id)
    assert [e.event_id for e in events] == made
    assert len(set(made)) == len(made)


@summaries
def test_events_follow_the_order_of_each_keys_first_note(
    notes: list[AuditNote], max_ids: int
) -> None:
    new_id, _ = id_source()
    events = summarize(notes, max_ids=max_ids, new_id=new_id)
    keys = [key_of(e) for e in events]
    # A key's events are adjacent ...
    collapsed = [k for k, _ in itertools.groupby(keys)]
    assert len(collapsed) == len(set(collapsed))
    # ... and keys come in the order of their first note.
    assert collapsed == list(dict.fromkeys(n.key for n in notes))


def test_a_split_key_spreads_its_ids_over_events() -> None:
    note = AuditNote(
        tenant_id="acme",
        event_type=ACCEPTED,
        subject="alice",
        route="batch",
        status=202,
        at=T0,
        ids=("a", "b", "c"),
        duplicates=("x", "y"),
        count=5,
    )
    events = summarize([note], max_ids=2, new_id=id_source()[0])
    assert [e.metadata["notification_ids"] for e in events] == [["a", "b"], ["c"], []]
    assert [e.metadata["duplicate_ids"] for e in events] == [[], ["x"], ["y"]]
    assert [e.metadata["count"] for e in events] == [2, 2, 1]


def test_rejections_of_one_key_become_one_event() -> None:
    notes = [
        AuditNote(
            tenant_id="acme",
            event_type=REJECTED,
            subject="alice",
            route="notifications",
            status=429,
            reason="rate limited",
            at=T0 + timedelta(seconds=s),
        )
        for s in (0, 2, 1)
    ]
    [event] = summarize(notes, max_ids=1, new_id=lambda: "e")
    assert event.metadata == {
        "subject": "alice",
        "route": "notifications",
        "status": 429,
        "count": 3,
        "first_at": "2026-11-25T12:00:00.000000Z",
        "last_at": "2026-11-25T12:00:02.000000Z",
        "reason": "rate limited",
    }


@pytest.mark.parametrize("max_ids", [0, -1])
def test_max_ids_below_one_is_refused(max_ids: int) -> None:
    with pytest.raises(ValueError, match="max_ids"):
        summarize([], max_ids=max_ids, new_id=lambda: "e")


def test_no_notes_no_events() -> None:
    new_id, made = id_source()
    assert summarize([], max_ids=5, new_id=new_id) == []
    assert made == []
