"""The delivery-state order, merge and write timestamps (pure, Hypothesis)."""

from __future__ import annotations

import itertools
import random
from functools import reduce

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from notifactor.domain.delivery_state import (
    DeliveryState,
    DeliveryStatus,
    attempts_timestamp,
    may_follow,
    merge,
    write_timestamp,
)

S = DeliveryState
statuses = st.builds(
    DeliveryStatus,
    state=st.sampled_from(list(S)),
    event_time_us=st.integers(0, 2**53 - 1)
    | st.integers(1_700_000_000_000_000, 1_700_000_000_000_100),
    last_error=st.sampled_from(["", "timeout", "refused"]),
    attempts=st.integers(0, 20),
)


def test_documented_order() -> None:
    assert [s.value for s in sorted(S, key=lambda s: s.rank)] == [
        "accepted", "pending", "retrying", "dead", "delivered", "acked",
    ]  # fmt: skip
    assert {s for s in S if s.is_terminal} == {S.ACKED, S.DEAD}


def test_lifecycle_transitions() -> None:
    assert may_follow(S.ACCEPTED, S.PENDING)
    assert may_follow(S.PENDING, S.RETRYING)
    assert may_follow(S.RETRYING, S.RETRYING)
    assert may_follow(S.RETRYING, S.DELIVERED)
    assert may_follow(S.RETRYING, S.DEAD)
    assert may_follow(S.DELIVERED, S.ACKED)
    assert may_follow(S.DEAD, S.DELIVERED)  # an operator's DLQ replay got through
    assert not may_follow(S.ACKED, S.DELIVERED)
    assert not any(may_follow(S.ACKED, s) for s in S)
    assert not may_follow(S.DELIVERED, S.DEAD)
    assert not may_follow(S.PENDING, S.ACCEPTED)


def test_every_transition_goes_up_in_rank() -> None:
    for a, b in itertools.product(S, S):
        if may_follow(a, b) and a is not b:
            assert b.rank > a.rank, (a, b)


@given(statuses, statuses)
def test_merge_is_commutative(a: DeliveryStatus, b: DeliveryStatus) -> None:
    assert merge(a, b) == merge(b, a)


@given(statuses, statuses, statuses)
def test_merge_is_associative(a: DeliveryStatus, b: DeliveryStatus, c: DeliveryStatus) -> None:
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@given(statuses)
def test_merge_is_idempotent(a: DeliveryStatus) -> None:
    assert merge(a, a) == a


@given(statuses, statuses)
def test_merge_never_goes_back(a: DeliveryStatus, b: DeliveryStatus) -> None:
    merged = merge(a, b)
    assert merged.state.rank >= max(a.state.rank, b.state.rank)
    assert merged.attempts == max(a.attempts, b.attempts)


@given(st.lists(statuses, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_any_permutation_gives_the_same_row(
    updates: list[DeliveryStatus], rng: random.Random
) -> None:
    shuffled = updates + rng.sample(updates, k=min(2, len(updates)))  # with replays
    rng.shuffle(shuffled)
    assert reduce(merge, shuffled) == reduce(merge, updates)


@given(statuses, statuses)
def test_write_timestamp_agrees_with_merge(a: DeliveryStatus, b: DeliveryStatus) -> None:
    """Cassandra last-write-wins by these timestamps picks the state merge picks."""
    ta = write_timestamp(a.state, a.event_time_us)
    tb = write_timestamp(b.state, b.event_time_us)
    winner = merge(a, b)
    if ta > tb:
        assert winner.state is a.state
        assert winner.event_time_us == a.event_time_us
    elif tb > ta:
        assert winner.state is b.state
    else:  # equal timestamps: Cassandra keeps the greater cell value, as merge does
        assert (a.state, a.event_time_us) == (b.state, b.event_time_us)
        assert winner.last_error == max(a.last_error, b.last_error)
    assert (attempts_timestamp(a.attempts) >= attempts_timestamp(b.attempts)) == (
        a.attempts >= b.attempts
    )


def test_a_higher_rank_wins_whatever_the_event_times() -> None:
    assert write_timestamp(S.PENDING, 0) > write_timestamp(S.ACCEPTED, 2**53 - 1)
    assert write_timestamp(S.ACKED, 5) > write_timestamp(S.DELIVERED, 2**53 - 1)


class CassandraCellModel(RuleBasedStateMachine):
    """Simulates Cassandra's per-cell last-write-wins against the merge model.

    Each update writes the state cells at ``write_timestamp`` and the attempts
    cell at ``attempts_timestamp``; a cell keeps the write with the larger
    timestamp, and on a tie the larger value. After any sequence of writes
    (replays included) the cells must equal the fold of ``merge``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.state_cell: tuple[int, tuple[str, int, str]] | None = None
        self.attempts_cell: tuple[int, int] | None = None
        self.model: DeliveryStatus | None = None
        self.written: list[DeliveryStatus] = []

    def _apply(self, status: DeliveryStatus) -> None:
        ts = write_timestamp(status.state, status.event_time_us)
        value = (status.state.value, status.event_time_us, status.last_error)
        if self.state_cell is None or (ts, value) > self.state_cell:
            self.state_cell = (ts, value)
        attempts = (attempts_timestamp(status.attempts), status.attempts)
        if self.attempts_cell is None or attempts > self.attempts_cell:
            self.attempts_cell = attempts
        self.model = status if self.model is None else merge(self.model, status)
        self.written.append(status)

    @rule(status=statuses)
    def write(self, status: DeliveryStatus) -> None:
        self._apply(status)

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        if self.written:
            self._apply(data.draw(st.sampled_from(self.written)))

    @invariant()
    def cells_equal_merge(self) -> None:
        if self.model is None:
            return
        assert self.state_cell is not None
        assert self.attempts_cell is not None
        state, event_us, error = self.state_cell[1]
        assert (
            DeliveryStatus(
                state=S(state),
                event_time_us=event_us,
                last_error=error,
                attempts=self.attempts_cell[1],
            )
            == self.model
        )


TestCassandraCellModel = CassandraCellModel.TestCase
