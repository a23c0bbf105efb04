"""The retry schedule: full jitter within the exponential ceiling, bounded attempts."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.domain.retry_schedule import (
    Defer,
    GiveUp,
    RetryAt,
    RetryPolicy,
    after_failure,
    after_refusal,
    delay_ceiling_ms,
)

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 50),
    base_ms=st.integers(1, 10_000),
    cap_ms=st.integers(1, 3_600_000),
)


@given(policies, st.integers(1, 200), st.integers(0, 2**32))
def test_delay_is_within_zero_and_the_capped_ceiling(
    policy: RetryPolicy, failed: int, seed: int
) -> None:
    decision = after_failure(policy, failed, random.Random(seed))
    if failed >= policy.max_attempts:
        assert decision == GiveUp(attempts=failed)
    else:
        assert isinstance(decision, RetryAt)
        assert decision.attempt == failed + 1
        ceiling = min(policy.cap_ms, policy.base_ms * 2 ** (failed - 1))
        assert 0 <= decision.delay_ms <= ceiling


@given(policies, st.integers(0, 2**32))
def test_a_delivery_is_attempted_at_most_max_attempts_times(policy: RetryPolicy, seed: int) -> None:
    rng = random.Random(seed)
    attempts = 1
    while isinstance(decision := after_failure(policy, attempts, rng), RetryAt):
        attempts = decision.attempt
    assert attempts == policy.max_attempts


@given(policies, st.integers(0, 10_000))
def test_ceiling_grows_monotonically_up_to_the_cap(policy: RetryPolicy, retry: int) -> None:
    assert delay_ceiling_ms(policy, retry) <= delay_ceiling_ms(policy, retry + 1) <= policy.cap_ms


def test_delays_are_spread_not_in_lockstep() -> None:
    policy = RetryPolicy(max_attempts=10, base_ms=1000, cap_ms=60_000)
    rng = random.Random(7)
    delays = {after_failure(policy, 3, rng).delay_ms for _ in range(200)}  # type: ignore[union-attr]
    assert len(delays) > 150
    assert max(delays) <= 4000


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0, base_ms=1, cap_ms=1)
    with pytest.raises(ValueError):
        after_failure(RetryPolicy(max_attempts=2, base_ms=1, cap_ms=1), 0, random.Random())


class _MaxJitter(random.Random):
    """A jitter source that always draws the top of the range (the worst case)."""

    def randint(self, a: int, b: int) -> int:
        return b


@st.composite
def bounded_policies(draw: st.DrawFn) -> RetryPolicy:
    base_ms = draw(st.integers(1, 10_000))
    return RetryPolicy(
        max_attempts=draw(st.integers(1, 12)),
        base_ms=base_ms,
        cap_ms=draw(st.integers(base_ms, 3_600_000)),
    )


@given(bounded_policies(), st.randoms(use_true_random=False))
def test_total_give_up_time_is_bounded_by_the_sum_of_the_ceilings(
    policy: RetryPolicy, rng: random.Random
) -> None:
    bound = sum(
        min(policy.cap_ms, policy.base_ms * 2 ** (n - 1)) for n in range(1, policy.max_attempts)
    )

    def schedule(source: random.Random) -> tuple[list[int], GiveUp]:
        delays: list[int] = []
        failed = 1
        while True:
            decision = after_failure(policy, failed, source)
            if isinstance(decision, GiveUp):
                return delays, decision
            assert isinstance(decision, RetryAt)
            assert decision.attempt == failed + 1
            delays.append(decision.delay_ms)
            failed = decision.attempt
            assert failed <= policy.max_attempts  # never loops past the policy

    delays, give_up = schedule(rng)
    assert len(delays) == policy.max_attempts - 1
    assert give_up == GiveUp(attempts=policy.max_attempts)
    assert all(delay >= 0 for delay in delays)
    assert sum(delays) <= bound
    # The bound is tight: the worst-case jitter waits exactly that long in total.
    worst, _ = schedule(_MaxJitter())
    assert sum(worst) == bound


@given(
    policies,
    st.integers(1, 60),
    st.integers(0, 100),
    st.tuples(st.integers(0, 10**8), st.integers(0, 10**8)),
    st.integers(0, 2**32),
)
def test_a_refusal_defers_within_patience_and_is_a_failure_after_it(
    policy: RetryPolicy, failed: int, deferrals: int, times: tuple[int, int], seed: int
) -> None:
    deferred, patience = times
    decision = after_refusal(
        policy,
        failed,
        random.Random(seed),
        deferrals=deferrals,
        deferred_ms=deferred,
        patience_ms=patience,
    )
    if deferred < patience:
        assert isinstance(decision, Defer)
        assert decision.deferrals == deferrals + 1
        assert 0 <= decision.delay_ms <= delay_ceiling_ms(policy, deferrals) <= policy.cap_ms
        assert decision.deferred_ms == deferred + decision.delay_ms
    else:
        assert decision == after_failure(policy, failed, random.Random(seed))


@given(policies, st.integers(0, 40), st.integers(0, 2_000), st.integers(0, 2**32))
def test_refusals_never_spend_attempts_and_end_once_patience_is_over(
    policy: RetryPolicy, caps: int, extra: int, seed: int
) -> None:
    """A gateway that stays full: deferrals until their delays add up to the patience."""
    patience = caps * policy.cap_ms + extra  # the loop below stays short
    rng = random.Random(seed)
    deferrals, deferred, attempts = 0, 0, 1
    while isinstance(
        decision := after_refusal(
            policy, attempts, rng, deferrals=deferrals, deferred_ms=deferred, patience_ms=patience
        ),
        Defer,
    ):
        assert decision.deferred_ms - deferred == decision.delay_ms <= policy.cap_ms
        deferrals, deferred = decision.deferrals, decision.deferred_ms
        assert attempts == 1
    assert patience <= deferred < patience + policy.cap_ms + 1
    while isinstance(decision, RetryAt):
        attempts = decision.attempt
        decision = after_refusal(
            policy, attempts, rng, deferrals=deferrals, deferred_ms=deferred, patience_ms=patience
        )
    assert decision == GiveUp(attempts=policy.max_attempts)


def test_a_patience_of_zero_counts_every_refusal() -> None:
    policy = RetryPolicy(max_attempts=3, base_ms=100, cap_ms=1000)
    decision = after_refusal(policy, 1, random.Random(1), deferrals=0, deferred_ms=0, patience_ms=0)
    assert isinstance(decision, RetryAt)
    assert decision.attempt == 2


def test_refusal_arguments_are_checked() -> None:
    policy = RetryPolicy(max_attempts=3, base_ms=100, cap_ms=1000)
    rng = random.Random()
    with pytest.raises(ValueError, match="failed_attempts"):
        after_refusal(policy, 0, rng, deferrals=0, deferred_ms=0, patience_ms=1)
    with pytest.raises(ValueError, match="deferrals"):
        after_refusal(policy, 1, rng, deferrals=-1, deferred_ms=0, patience_ms=1)
    with pytest.raises(ValueError, match="deferred_ms"):
        after_refusal(policy, 1, rng, deferrals=0, deferred_ms=-5, patience_ms=1)
