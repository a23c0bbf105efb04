"""The log budget: never more lines through per window than allowed, none lost from the count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.log_budget import LogBudget

# Gaps between events, in seconds: bursts (0) and pauses.
GAPS = st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.3, 0.7, 1.0, 2.5]), max_size=300)


@given(per_s=st.integers(min_value=1, max_value=20), gaps=GAPS)
def test_lines_through_are_bounded_none_is_held_needlessly_and_all_are_counted(
    per_s: int, gaps: list[float]
) -> None:
    budget = LogBudget(per_s=per_s)
    now, through, reported_held = 0.0, [], 0
    for gap in gaps:
        now += gap
        held = budget.take(now)
        if held is None:
            # Held back only when the budget of the last second is spent.
            assert sum(1 for t in through if now - t < 1.0) >= per_s
        else:
            through.append(now)
            reported_held += held
    # Windows are one second each: any second sees at most two windows' worth.
    for index, start in enumerate(through):
        assert sum(1 for t in through[index:] if t - start < 1.0) <= 2 * per_s
    # Every line is let through, or reported by a later one, or still held back.
    assert len(through) + reported_held + budget.held_back == len(gaps)


def test_a_burst_lets_the_budget_through_then_reports_what_it_held_back() -> None:
    budget = LogBudget(per_s=2)
    assert [budget.take(10.0) for _ in range(5)] == [0, 0, None, None, None]
    assert budget.take(10.5) is None
    assert budget.take(11.0) == 4  # a new window: the four held back are reported
    assert budget.take(11.1) == 0


def test_a_budget_of_none_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LogBudget(per_s=0)
