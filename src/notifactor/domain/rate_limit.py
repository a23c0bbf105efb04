"""Per-tenant admission: GCRA rate limit plus a daily quota, as a pure function.

GCRA (the generic cell rate algorithm) keeps one number per tenant, the
*theoretical arrival time* ``tat``: when the tenant's bucket would be full
again. A request of cost ``n`` is admitted when
``max(tat, now) + n * emission - now <= tolerance``, where ``emission`` is the
time one unit is worth (``1 / rate``) and ``tolerance = burst * emission``.
It is exactly a token bucket of ``burst`` tokens refilled at ``rate`` per
second, stored as a single timestamp, so it fits one Redis key and one
atomic script (:mod:`notifactor.adapters.redis_ingest` implements the same
rule in Lua and an integration test compares the two).

All times are integer microseconds so Python and Lua agree to the unit:
``emission`` is rounded *up*, so the admitted rate never exceeds the
configured one. Over any window of length ``t`` at most ``t / emission +
burst <= rate * t + burst`` requests are admitted.

The daily quota counts admitted units per UTC day; ``quota = 0`` means none.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs

MICROS_PER_SECOND = 1_000_000
MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND

DenyReason = Literal["rate", "quota"]


@attrs.frozen(kw_only=True)
class RateRule:
    """One tenant's limits in the integer form the algorithm uses.

    Attributes:
        emission_us: microseconds one admitted unit costs (``ceil(1e6 / rate)``).
        burst: units admissible at once from a full bucket.
        daily_quota: units admissible per UTC day; 0 = unlimited.
    """

    emission_us: int
    burst: int
    daily_quota: int = 0

    @classmethod
    def from_policy(cls, *, rate_per_s: float, burst: int, daily_quota: int) -> RateRule:
        """The rule for a tenant policy (``TenantPolicy`` fields)."""
        emission = max(1, math.ceil(MICROS_PER_SECOND / rate_per_s))
        return cls(emission_us=emission, burst=max(1, burst), daily_quota=max(0, daily_quota))

    @property
    def tolerance_us(self) -> int:
        """How far ``tat`` may run ahead of now: a full bucket's worth."""
        return self.burst * self.emission_us


@attrs.frozen(kw_only=True)
class RateState:
    """What is stored per tenant: GCRA ``tat`` and the quota counter of one day."""

    tat_us: int = 0
    day: int = -1
    used: int = 0


@attrs.frozen(kw_only=True)
class Decision:
    """The outcome of one admission request and what the headers report.

    Attributes:
        allowed: whether the units were admitted (and counted).
        reason: why not, when not.
        limit: the limit being reported (``burst``, or the quota when that
            is what denied).
        remaining: units admissible right now after this decision.
        reset_us: microseconds until the reported limit is fully available.
        retry_after_us: microseconds until this same request would be
            admitted (0 when admitted).
    """

    allowed: bool
    reason: DenyReason | None
    limit: int
    remaining: int
    reset_us: int
    retry_after_us: int


def day_of(now_us: int) -> int:
    """The UTC day number of ``now_us``."""
    return now_us // MICROS_PER_DAY


def decide(
    rule: RateRule, state: RateState, now_us: int, cost: int = 1
) -> tuple[Decision, RateState]:
    """Admit ``cost`` units at ``now_us`` or not; returns the decision and the new state.

    A denied request leaves the state unchanged: refused work costs nothing.
    """
    emission, tolerance = rule.emission_us, rule.tolerance_us
    tat = max(state.tat_us, now_us)
    new_tat = tat + cost * emission
    day = day_of(now_us)
    used = state.used if state.day == day else 0
    quota = rule.daily_quota

    if quota > 0 and used + cost > quota:
        next_day = (day + 1) * MICROS_PER_DAY
        wait = next_day - now_us
        decision = Decision(
            allowed=False,
            reason="quota",
            limit=quota,
            remaining=max(0, quota - used),
            reset_us=wait,
            retry_after_us=wait,
        )
        return decision, state
    if new_tat - now_us > tolerance:
        decision = Decision(
            allowed=False,
            reason="rate",
            limit=rule.burst,
            remaining=_remaining(tolerance - (tat - now_us), emission, quota, used),
            reset_us=tat - now_us,
            retry_after_us=new_tat - tolerance - now_us,
        )
        return decision, state
    decision = Decision(
        allowed=True,
        reason=None,
        limit=rule.burst,
        remaining=_remaining(tolerance - (new_tat - now_us), emission, quota, used + cost),
        reset_us=new_tat - now_us,
        retry_after_us=0,
    )
    return decision, RateState(tat_us=new_tat, day=day, used=used + cost)


def _remaining(credit_us: int, emission_us: int, quota: int, used: int) -> int:
    by_rate = max(0, credit_us // emission_us)
    if quota > 0:
        return min(by_rate, max(0, quota - used))
    return by_rate


def whole_seconds(micros: int) -> int:
    """Microseconds rounded up to whole seconds (what HTTP headers carry)."""
    return max(0, -(-micros // MICROS_PER_SECOND))
