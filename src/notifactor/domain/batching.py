"""When a storage writer flushes, how it groups a flush, and how it backs off.

Pure and clock-free: callers pass ``now`` (seconds on any monotonic clock) and
a random source, so the policy is tested exhaustively without Trio.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import attrs

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


@attrs.frozen(kw_only=True)
class BatchPolicy:
    """Flush thresholds of a storage writer.

    Attributes:
        max_items: flush as soon as this many items are buffered.
        max_age_s: flush once the oldest buffered item has waited this long,
            however few items there are; bounds the latency a caller sees.
        max_group_items: largest group handed to the store in one call; a
            larger group for one partition key is split into chunks.
        flush_when_idle: also flush at once whenever no flush is running
            (group commit): a lone write is not held for ``max_age_s``, and
            under load writes gather while the previous flush runs.
    """

    max_items: int = attrs.field(default=256, validator=_positive)
    max_age_s: float = attrs.field(default=0.005, validator=_positive)
    max_group_items: int = attrs.field(default=64, validator=_positive)
    flush_when_idle: bool = False


@attrs.define
class BatchBuffer(Generic[T]):
    """Items waiting for the next flush, with the time the oldest arrived."""

    policy: BatchPolicy
    items: list[T] = attrs.field(factory=list)
    oldest_at: float | None = None

    def add(self, item: T, now: float) -> None:
        if not self.items:
            self.oldest_at = now
        self.items.append(item)

    def flush_due(self, now: float, *, idle: bool = False) -> bool:
        """Whether the buffer must be flushed at ``now``.

        Due when size or age is reached, or, with ``flush_when_idle``, when
        ``idle`` (no flush is running) and anything is buffered.
        """
        if not self.items:
            return False
        if len(self.items) >= self.policy.max_items:
            return True
        if idle and self.policy.flush_when_idle:
            return True
        deadline = self.deadline()
        # The same float as the caller's timer: ``now - oldest_at >= max_age``
        # can be False at exactly ``oldest_at + max_age`` (rounding), and a
        # timer that fired without a flush fires again at once, forever.
        return deadline is not None and now >= deadline

    def deadline(self) -> float | None:
        """When the age threshold fires, or ``None`` for an empty buffer."""
        if self.oldest_at is None:
            return None
        return self.oldest_at + self.policy.max_age_s

    def take(self) -> list[T]:
        """Empty the buffer and return what it held, in arrival order."""
        items, self.items, self.oldest_at = self.items, [], None
        return items


def group_for_flush(
    items: Iterable[T], key: Callable[[T], K], max_group_items: int
) -> list[tuple[K, list[T]]]:
    """Split ``items`` into groups that share a key, each at most ``max_group_items`` long.

    Groups come out in order of each key's first appearance and keep arrival
    order inside, so every item lands in exactly one group and a later write
    of the same key is never placed before an earlier one.
    """
    if max_group_items <= 0:
        raise ValueError("max_group_items must be > 0")
    by_key: dict[K, list[T]] = {}
    for item in items:
        by_key.setdefault(key(item), []).append(item)
    groups: list[tuple[K, list[T]]] = []
    for group_key, members in by_key.items():
        for start in range(0, len(members), max_group_items):
            groups.append((group_key, members[start : start + max_group_items]))
    return groups


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Retries of transient storage errors: exponential backoff with full jitter.

    Attributes:
        max_attempts: tries in total (the first included) before the error is
            handed to the caller.
        base_s: upper bound of the first delay.
        cap_s: no delay exceeds this.
    """

    max_attempts: int = attrs.field(default=8, validator=_positive)
    base_s: float = attrs.field(default=0.05, validator=_positive)
    cap_s: float = attrs.field(default=2.0, validator=_positive)

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failed_attempts`` failures (>= 1), uniformly in [0, bound]."""
        if failed_attempts < 1:
            raise ValueError("failed_attempts must be >= 1")
        bound = min(self.cap_s, self.base_s * 2.0 ** min(failed_attempts - 1, 62))
        return (rng or random).uniform(0.0, bound)

    def gives_up_after(self, failed_attempts: int) -> bool:
        return failed_attempts >= self.max_attempts


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` cut into consecutive slices of at most ``size``."""
    if size <= 0:
        raise ValueError("size must be > 0")
    return [items[i : i + size] for i in range(0, len(items), size)]
