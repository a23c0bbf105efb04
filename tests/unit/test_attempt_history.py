"""The attempt history an entry carries through the retry set: written, read, and damaged."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st

from notifactor.actors.dispatch_entry import HISTORY_FIELDS, AttemptHistory
from notifactor.adapters.redis_dispatch import (
    ATTEMPTS_FIELD,
    DEFERRALS_FIELD,
    DEFERRED_MS_FIELD,
    FIRST_ATTEMPT_FIELD,
    ROUTED_TO_FIELD,
)
from notifactor.domain.dlq_entry import DlqReason

gateway_ids = st.text(min_size=1, max_size=12)


@st.composite
def histories(draw: st.DrawFn) -> AttemptHistory:
    deferrals = draw(st.integers(0, 1000))
    return AttemptHistory(
        attempts=draw(st.integers(0, 100)),
        first_attempt_ms=draw(st.none() | st.integers(1, 2**53)),
        last_error=draw(st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)),
        deferrals=deferrals,
        deferred_ms=draw(st.integers(0, 10**9)) if deferrals else 0,
        routed_to=draw(st.frozensets(gateway_ids, max_size=4)),
        dead_reason=draw(st.none() | st.sampled_from(DlqReason)),
    )


@given(histories())
def test_a_history_reads_back_as_written(history: AttemptHistory) -> None:
    assert AttemptHistory.of(history.fields()) == history


def test_an_error_text_that_is_not_valid_unicode_is_written_with_replacements() -> None:
    fields = AttemptHistory(attempts=1, last_error="bad \udc80 byte").fields()
    assert AttemptHistory.of(fields).last_error == "bad ? byte"


@given(histories(), st.sampled_from([ATTEMPTS_FIELD, FIRST_ATTEMPT_FIELD, DEFERRALS_FIELD]))
def test_a_damaged_field_resets_only_itself(history: AttemptHistory, field: str) -> None:
    fields = history.fields()
    fields[field] = b"not a number"
    read = AttemptHistory.of(fields)
    expected = {
        ATTEMPTS_FIELD: attrs.evolve(history, attempts=0),
        FIRST_ATTEMPT_FIELD: attrs.evolve(history, first_attempt_ms=None),
        DEFERRALS_FIELD: attrs.evolve(history, deferrals=0),
    }[field]
    assert read == expected


def test_damaged_gateway_lists_and_sums_read_as_empty() -> None:
    fields = {ATTEMPTS_FIELD: b"3", ROUTED_TO_FIELD: b"{not json", DEFERRED_MS_FIELD: b"-"}
    assert AttemptHistory.of(fields) == AttemptHistory(attempts=3)
    assert AttemptHistory.of({ROUTED_TO_FIELD: b'["gw-1", 2]'}).routed_to == frozenset()
    assert AttemptHistory.of({ROUTED_TO_FIELD: b'["gw-1","gw-2"]'}).routed_to == {"gw-1", "gw-2"}


@given(histories(), st.sets(st.sampled_from(sorted(HISTORY_FIELDS))))
def test_any_subset_of_the_history_fields_reads_like_the_full_parse(
    history: AttemptHistory, kept: set[str]
) -> None:
    """With some history fields gone, each missing one takes its default alone."""
    written = history.fields()
    fields = {name: value for name, value in written.items() if name in kept}
    fields["envelope"] = b"{}"
    read = AttemptHistory.of(fields)
    expected = AttemptHistory.of({**fields, ATTEMPTS_FIELD: fields.get(ATTEMPTS_FIELD, b"0")})
    assert read == expected
    if not kept & written.keys():
        assert read == AttemptHistory()


def test_an_entry_fresh_from_the_gateway_has_no_history() -> None:
    assert AttemptHistory.of({"envelope": b"{}", "other": b"x"}) == AttemptHistory()
