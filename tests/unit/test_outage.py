"""Waiting out an unreachable dependency: pauses, and which errors count."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from notifactor.actors.outage import Outage, only_of


@given(
    first=st.floats(min_value=0.001, max_value=1.0),
    cap=st.floats(min_value=0.001, max_value=30.0),
    failures=st.integers(min_value=0, max_value=200),
)
def test_pauses_grow_to_their_cap_and_never_shrink_during_an_outage(
    first: float, cap: float, failures: int
) -> None:
    outage = Outage("x", logging.getLogger("test"), first_pause_s=first, max_pause_s=cap)
    pauses = []
    for count in range(1, failures + 2):
        outage.failures = count
        pauses.append(outage.pause_s())
    assert all(0 < pause <= cap for pause in pauses)
    assert pauses == sorted(pauses)
    assert pauses[0] == min(first, cap)


async def test_an_outage_is_logged_when_it_starts_and_when_it_ends(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    outage = Outage("partition 3 stream", logging.getLogger("test.outage"))
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        for _ in range(5):
            await outage.failed(ConnectionError("refused"))
        outage.succeeded()
        outage.succeeded()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "partition 3 stream unreachable, waiting for it: refused",
        "partition 3 stream reachable again after 5 failed attempts",
    ]


async def test_a_group_is_logged_by_the_errors_inside_it(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    outage = Outage("partition 7 stream", logging.getLogger("test.outage"))
    group = ExceptionGroup(
        "Exceptions from Trio nursery", [ExceptionGroup("inner", [ConnectionError("refused")])]
    )
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        await outage.failed(group)
    [message] = [record.getMessage() for record in caplog.records]
    assert message == "partition 7 stream unreachable, waiting for it: ConnectionError: refused"


def test_only_groups_made_entirely_of_the_kinds_count() -> None:
    kinds = (ConnectionError, TimeoutError)
    assert only_of(ConnectionError(), kinds)
    assert only_of(ExceptionGroup("g", [ConnectionError(), TimeoutError()]), kinds)
    assert only_of(
        BaseExceptionGroup("g", [ExceptionGroup("h", [ConnectionError()]), TimeoutError()]), kinds
    )
    assert not only_of(ValueError(), kinds)
    assert not only_of(ExceptionGroup("g", [ConnectionError(), ValueError()]), kinds)
    assert not only_of(BaseExceptionGroup("g", [ConnectionError(), KeyboardInterrupt()]), kinds)
