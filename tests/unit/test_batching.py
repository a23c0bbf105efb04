"""Flush policy, grouping and retry backoff of the storage writer (pure, Hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from notifactor.domain.batching import BatchBuffer, BatchPolicy, RetryPolicy, group_for_flush
from notifactor.domain.retention import ttl_seconds


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers()), max_size=60),
    st.integers(1, 7),
)
def test_groups_partition_the_items(items: list[tuple[str, int]], max_group: int) -> None:
    groups = group_for_flush(items, lambda item: item[0], max_group)
    flattened = [item for _, group in groups for item in group]
    assert sorted(flattened) == sorted(items)
    for key, group in groups:
        assert 1 <= len(group) <= max_group
        assert all(item[0] == key for item in group)
    for key in {k for k, _ in items}:  # arrival order is kept within a key
        assert [i for _, g in groups for i in g if i[0] == key] == [i for i in items if i[0] == key]


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_items"):
        BatchPolicy(max_items=0)
    with pytest.raises(ValueError, match="max_age_s"):
        BatchPolicy(max_age_s=0)


@given(st.integers(1, 40), st.randoms(use_true_random=False))
def test_retry_delay_is_jittered_and_capped(failures: int, rng: random.Random) -> None:
    policy = RetryPolicy(max_attempts=5, base_s=0.1, cap_s=1.5)
    delay = policy.delay(failures, rng)
    assert 0 <= delay <= min(1.5, 0.1 * 2 ** (failures - 1))
    assert policy.gives_up_after(failures) == (failures >= 5)


@given(st.integers(0, 10**16), st.integers(1, 3650), st.integers(0, 10**16))
def test_ttl_counts_from_the_record_time(record_us: int, days: int, now_us: int) -> None:
    ttl = ttl_seconds(record_us, days, now_us)
    retention_s = days * 86_400
    if record_us >= now_us:
        assert ttl == retention_s
    elif now_us - record_us >= retention_s * 1_000_000:
        assert ttl is None
    else:
        assert ttl is not None
        assert 1 <= ttl <= retention_s


class BufferModel(RuleBasedStateMachine):
    """The buffer against a list: nothing lost, flush exactly at size or age."""

    policy = BatchPolicy(max_items=5, max_age_s=1.0)

    def __init__(self) -> None:
        super().__init__()
        self.buffer: BatchBuffer[int] = BatchBuffer(self.policy)
        self.now = 0.0
        self.model: list[int] = []
        self.first_at: float | None = None
        self.taken: list[int] = []
        self.counter = 0

    @rule(dt=st.floats(0, 0.7))
    def tick(self, dt: float) -> None:
        self.now += dt

    @precondition(lambda self: len(self.model) < self.policy.max_items)
    @rule()
    def add(self) -> None:
        self.counter += 1
        self.buffer.add(self.counter, self.now)
        if not self.model:
            self.first_at = self.now
        self.model.append(self.counter)

    @rule()
    def flush_if_due(self) -> None:
        if self.buffer.flush_due(self.now):
            self.taken.extend(self.buffer.take())
            self.model, self.first_at = [], None

    @invariant()
    def due_exactly_at_thresholds(self) -> None:
        expected = bool(self.model) and (
            len(self.model) >= self.policy.max_items
            or self.now - (self.first_at or 0.0) >= self.policy.max_age_s
        )
        assert self.buffer.flush_due(self.now) == expected
        assert self.buffer.items == self.model
        if self.model:
            assert self.buffer.deadline() == (self.first_at or 0.0) + self.policy.max_age_s
        else:
            assert self.buffer.deadline() is None

    @invariant()
    def nothing_lost_or_reordered(self) -> None:
        assert self.taken + self.buffer.items == list(range(1, self.counter + 1))


TestBufferModel = BufferModel.TestCase


@given(
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
    st.floats(0.001, 3600, allow_nan=False, allow_infinity=False),
)
def test_the_age_deadline_always_makes_a_flush_due(oldest_at: float, max_age_s: float) -> None:
    # A timer set to deadline() that fires must find the flush due, or the
    # writer's receive loop would wake at the same instant forever.
    buffer: BatchBuffer[int] = BatchBuffer(BatchPolicy(max_items=10, max_age_s=max_age_s))
    buffer.add(1, oldest_at)
    deadline = buffer.deadline()
    assert deadline is not None
    assert buffer.flush_due(deadline)


def test_the_age_deadline_with_a_rounding_sum() -> None:
    # (o + 0.1) - o < 0.1 for this o in binary floating point.
    oldest_at = 144.12787791789205
    assert (oldest_at + 0.1) - oldest_at < 0.1
    buffer: BatchBuffer[int] = BatchBuffer(BatchPolicy(max_items=10, max_age_s=0.1))
    buffer.add(1, oldest_at)
    assert buffer.flush_due(oldest_at + 0.1)


@given(
    items=st.integers(0, 20),
    idle=st.booleans(),
    when_idle=st.booleans(),
    age=st.floats(0, 2.0),
)
def test_idle_flushes_only_with_group_commit(
    items: int, idle: bool, when_idle: bool, age: float
) -> None:
    policy = BatchPolicy(max_items=10, max_age_s=1.0, flush_when_idle=when_idle)
    buffer: BatchBuffer[int] = BatchBuffer(policy)
    for n in range(items):
        buffer.add(n, 0.0)
    by_size_or_age = items > 0 and (items >= 10 or age >= 1.0)
    assert buffer.flush_due(age, idle=idle) == (
        by_size_or_age or (items > 0 and idle and when_idle)
    )
