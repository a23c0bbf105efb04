"""The backoff schedule: bounds, growth, cap, jitter and reset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.backoff import Backoff, BackoffPolicy

unit = st.floats(0.0, 1.0, exclude_max=True)


@st.composite
def policies(draw: st.DrawFn) -> BackoffPolicy:
    low = draw(st.one_of(st.just(0.0), st.floats(0.001, 10.0)))  # realistic delays
    high = draw(st.floats(low, 1000.0))
    return BackoffPolicy(
        min_s=low,
        max_s=high,
        jitter=draw(st.floats(0.0, 1.0)),
        reset_after_s=draw(st.floats(0.1, 100.0)),
        factor=draw(st.one_of(st.just(1.0), st.floats(1.1, 4.0))),
    )


@given(policy=policies(), attempt=st.integers(0, 10_000), u=unit)
def test_delay_is_always_within_min_and_max(policy: BackoffPolicy, attempt: int, u: float) -> None:
    assert policy.min_s <= policy.delay(attempt, u) <= policy.max_s


@given(policy=policies(), attempt=st.integers(0, 200))
def test_base_delay_grows_until_capped(policy: BackoffPolicy, attempt: int) -> None:
    now, later = policy.base_delay(attempt), policy.base_delay(attempt + 1)
    assert later >= now
    if now < policy.max_s and policy.min_s > 0 and policy.factor > 1:
        assert later > now or later == policy.max_s


@given(policy=policies())
def test_base_delay_reaches_the_cap(policy: BackoffPolicy) -> None:
    if policy.min_s > 0 and policy.factor >= 1.5:
        assert policy.base_delay(10_000) == policy.max_s


@given(policy=policies(), attempt=st.integers(0, 100), u=unit)
def test_jitter_only_shortens_by_at_most_its_fraction(
    policy: BackoffPolicy, attempt: int, u: float
) -> None:
    base = policy.base_delay(attempt)
    delay = policy.delay(attempt, u)
    assert delay <= base
    assert delay >= max(policy.min_s, base * (1 - policy.jitter)) - 1e-9


@given(policy=policies(), uptimes=st.lists(st.floats(0.0, 200.0), min_size=1, max_size=20))
def test_resets_after_a_quiet_period(policy: BackoffPolicy, uptimes: list[float]) -> None:
    state, now, consecutive = Backoff(policy=policy), 0.0, 0
    for uptime in uptimes:
        started_at, now = now, now + uptime
        if now - started_at >= policy.reset_after_s:  # healthy for long enough
            consecutive = 0
        delay, state = state.next(now=now, started_at=started_at, u=0.0)
        assert delay == policy.base_delay(consecutive)
        consecutive += 1
        now += delay


def test_concrete_schedule() -> None:
    policy = BackoffPolicy(min_s=0.1, max_s=1.0, jitter=0.0, reset_after_s=10.0)
    state, delays = Backoff(policy=policy), []
    for _ in range(6):
        delay, state = state.next(now=0.0, started_at=0.0, u=0.5)
        delays.append(delay)
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="backoff_min_s must be <= backoff_max_s"):
        BackoffPolicy(min_s=2.0, max_s=1.0)
    with pytest.raises(ValueError, match="jitter"):
        BackoffPolicy(jitter=2.0)
