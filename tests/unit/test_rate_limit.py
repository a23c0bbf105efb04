"""GCRA + daily quota: never over rate*t + burst, and exactly a token bucket."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from notifactor.domain.rate_limit import (
    MICROS_PER_DAY,
    MICROS_PER_SECOND,
    RateRule,
    RateState,
    decide,
    whole_seconds,
)

rules = st.builds(
    RateRule.from_policy,
    rate_per_s=st.floats(min_value=0.1, max_value=10_000, allow_nan=False),
    burst=st.integers(min_value=1, max_value=50),
    daily_quota=st.just(0),
)


@given(rules, st.lists(st.integers(min_value=0, max_value=2 * MICROS_PER_SECOND), max_size=200))
def test_never_more_than_rate_times_window_plus_burst(rule: RateRule, gaps: list[int]) -> None:
    rate = MICROS_PER_SECOND / rule.emission_us  # the effective rate, <= the configured one
    state, now, admitted = RateState(), 10**12, []
    for gap in gaps:
        now += gap
        decision, state = decide(rule, state, now)
        if decision.allowed:
            admitted.append(now)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            window_s = (admitted[j] - start) / MICROS_PER_SECOND
            assert j - i + 1 <= rate * window_s + rule.burst + 1e-9


@given(rules)
def test_a_full_bucket_admits_exactly_burst_at_once(rule: RateRule) -> None:
    state, now = RateState(), 10**12
    results = []
    for _ in range(rule.burst + 1):
        decision, state = decide(rule, state, now)
        results.append(decision.allowed)
    assert results == [True] * rule.burst + [False]


class TokenBucketComparison(RuleBasedStateMachine):
    """GCRA against an explicit token bucket holding ``credit`` microseconds."""

    @initialize(rule=rules)
    def setup(self, rule: RateRule) -> None:
        self.rule = rule
        self.state = RateState()
        self.now = 10**12
        self.credit = rule.tolerance_us

    @rule(gap=st.integers(min_value=0, max_value=3 * MICROS_PER_SECOND))
    def wait(self, gap: int) -> None:
        self.now += gap
        self.credit = min(self.rule.tolerance_us, self.credit + gap)

    @rule()
    def request(self) -> None:
        decision, self.state = decide(self.rule, self.state, self.now)
        model_admits = self.credit >= self.rule.emission_us
        assert decision.allowed == model_admits
        if model_admits:
            self.credit -= self.rule.emission_us
            assert decision.remaining == self.credit // self.rule.emission_us
        else:
            # Waiting retry_after makes the same request admissible, and not a microsecond less.
            assert decision.retry_after_us == self.rule.emission_us - self.credit
            assert decide(self.rule, self.state, self.now + decision.retry_after_us)[0].allowed

    @invariant()
    def credit_bounded(self) -> None:
        if hasattr(self, "credit"):
            assert 0 <= self.credit <= self.rule.tolerance_us


TestTokenBucketComparison = TokenBucketComparison.TestCase
TestTokenBucketComparison.settings = settings(max_examples=100, stateful_step_count=40)


@given(st.integers(min_value=1, max_value=20), st.integers(min_value=0, max_value=5))
def test_daily_quota_counts_per_utc_day(quota: int, extra: int) -> None:
    rule = RateRule.from_policy(rate_per_s=1e6, burst=10**6, daily_quota=quota)
    state, now = RateState(), 20_000 * MICROS_PER_DAY
    allowed = []
    for _ in range(quota + extra):
        decision, state = decide(rule, state, now)
        allowed.append(decision.allowed)
        now += 1
    assert allowed == [True] * quota + [False] * extra
    if extra:
        assert decision.reason == "quota"
        assert decision.retry_after_us == 20_001 * MICROS_PER_DAY - (now - 1)
    decision, state = decide(rule, state, 20_001 * MICROS_PER_DAY)
    assert decision.allowed


def test_denied_requests_cost_nothing() -> None:
    rule = RateRule.from_policy(rate_per_s=1, burst=1, daily_quota=0)
    _, state = decide(rule, RateState(), 0)
    for t in range(0, 900_000, 1000):
        decision, new_state = decide(rule, state, t)
        assert not decision.allowed
        assert new_state == state
    assert decide(rule, state, 1_000_000)[0].allowed


def test_whole_seconds_rounds_up() -> None:
    assert [whole_seconds(x) for x in (0, 1, 999_999, 1_000_000, 1_000_001)] == [0, 1, 1, 1, 2]
