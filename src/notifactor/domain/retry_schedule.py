"""When to try a failed delivery again: exponential backoff with full jitter, capped.

Pure: the caller passes the policy, the number of attempts already made and a
random source, so the schedule is testable without a clock and the same code
serves every dispatcher. A refusal by a full delivery stream is deferred
without spending an attempt, for a bounded time (:func:`after_refusal`). "Full jitter" draws each delay uniformly from
``[0, min(cap, base * 2**retry)]``: retries of many notifications that failed on
the same cause (a storage outage) spread out instead of arriving in waves.
"""

from __future__ import annotations

import random

import attrs

# 2**62 ms is far beyond any cap; clamping the exponent keeps the ceiling an
# exact integer computation for any attempt count.
_MAX_EXPONENT = 62


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """A tenant's retry policy (``max_attempts``, ``retry_base_ms``, ``retry_cap_ms``).

    Attributes:
        max_attempts: delivery attempts in total, the first one included; the
            attempt numbered ``max_attempts`` that fails dead-letters the entry.
        base_ms: ceiling of the first retry's delay.
        cap_ms: no delay is ever longer.
    """

    max_attempts: int
    base_ms: int
    cap_ms: int

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_ms < 1 or self.cap_ms < 1:
            raise ValueError("base_ms and cap_ms must be >= 1")


@attrs.frozen(kw_only=True)
class RetryAt:
    """Try again after ``delay_ms``; it will be attempt number ``attempt``."""

    delay_ms: int
    attempt: int


@attrs.frozen(kw_only=True)
class GiveUp:
    """Attempts are exhausted: dead-letter with reason ``exhausted``."""

    attempts: int


@attrs.frozen(kw_only=True)
class Defer:
    """Try again after ``delay_ms`` without spending an attempt (a full delivery stream).

    ``deferrals`` and ``deferred_ms`` count this one too: they are what the
    next refusal passes back.
    """

    delay_ms: int
    deferrals: int
    deferred_ms: int


RetryDecision = RetryAt | Defer | GiveUp


def delay_ceiling_ms(policy: RetryPolicy, retry: int) -> int:
    """Largest delay before retry number ``retry`` (0 for the first retry)."""
    if retry < 0:
        raise ValueError(f"retry must be >= 0, got {retry}")
    return min(policy.cap_ms, policy.base_ms << min(retry, _MAX_EXPONENT))


def after_failure(policy: RetryPolicy, failed_attempts: int, rng: random.Random) -> RetryDecision:
    """What to do after the attempt numbered ``failed_attempts`` failed.

    Args:
        policy: the tenant's policy.
        failed_attempts: attempts made so far, all failed (>= 1).
        rng: the jitter source (seed it in tests).
    """
    if failed_attempts < 1:
        raise ValueError(f"failed_attempts must be >= 1, got {failed_attempts}")
    if failed_attempts >= policy.max_attempts:
        return GiveUp(attempts=failed_attempts)
    ceiling = delay_ceiling_ms(policy, failed_attempts - 1)
    return RetryAt(delay_ms=rng.randint(0, ceiling), attempt=failed_attempts + 1)


def after_refusal(
    policy: RetryPolicy,
    failed_attempts: int,
    rng: random.Random,
    *,
    deferrals: int,
    deferred_ms: int,
    patience_ms: int,
) -> RetryDecision:
    """What to do after an attempt failed only because a delivery stream was full.

    A gateway that is far behind refuses new deliveries until it catches up.
    That says nothing about the notification, so while the delays of the
    entry's deferrals add up to less than ``patience_ms`` it is deferred: the
    attempt is not spent, and the delays grow like retries do (full jitter
    under ``delay_ceiling_ms(policy, deferrals)``). Past that, or with a
    patience of 0, the refusal counts as an ordinary failure. The bound is
    the sum of the delays handed out, not a clock reading, so dispatchers
    whose clocks disagree cannot stretch or shorten it.

    Args:
        policy: the tenant's policy.
        failed_attempts: attempts counted so far, this one included (>= 1).
        rng: the jitter source.
        deferrals: deferrals of this entry so far.
        deferred_ms: the sum of their delays.
        patience_ms: how long refusals may defer it, in total.
    """
    if failed_attempts < 1:
        raise ValueError(f"failed_attempts must be >= 1, got {failed_attempts}")
    if deferrals < 0 or deferred_ms < 0:
        raise ValueError(f"deferrals and deferred_ms must be >= 0, got {deferrals}, {deferred_ms}")
    if deferred_ms >= patience_ms:
        return after_failure(policy, failed_attempts, rng)
    delay_ms = rng.randint(0, delay_ceiling_ms(policy, deferrals))
    return Defer(delay_ms=delay_ms, deferrals=deferrals + 1, deferred_ms=deferred_ms + delay_ms)
