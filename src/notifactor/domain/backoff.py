"""Restart backoff: how long a crashed child waits before it runs again.

Restarting instantly turns a failing dependency into a busy loop that burns
CPU and floods logs, and children that share the cause all hammer it at the
same moment. So each consecutive crash of a child doubles its delay, from
``min_s`` up to ``max_s``, with random jitter to spread restarts out; a child
that has stayed up for ``reset_after_s`` is considered healthy again and its
next crash starts over from ``min_s``.

Everything here is pure: time (``now``) and randomness (``u`` in ``[0, 1)``)
are arguments, so the schedule is testable with Hypothesis and reproducible.
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class BackoffPolicy:
    """The shape of the delay schedule.

    Attributes:
        min_s: delay before the first restart (``0`` disables backoff).
        max_s: cap of the delay.
        jitter: fraction in ``[0, 1]``; each delay is shortened by a random
            part of up to this fraction. Jitter only ever shortens, so delays
            stay spread out even once they reach the cap.
        reset_after_s: uptime after which a child counts as healthy again.
        factor: growth per consecutive crash.
    """

    min_s: float = 0.1
    max_s: float = 10.0
    jitter: float = 0.2
    reset_after_s: float = 30.0
    factor: float = 2.0

    def __attrs_post_init__(self) -> None:
        if self.min_s < 0:
            raise ValueError("backoff min must be >= 0")
        if self.min_s > self.max_s:
            raise ValueError("backoff_min_s must be <= backoff_max_s")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")
        if not self.reset_after_s > 0:
            raise ValueError("backoff reset must be > 0")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")

    def base_delay(self, attempt: int) -> float:
        """Delay before restart number ``attempt`` (0-based), without jitter."""
        try:
            grown = self.min_s * self.factor ** max(attempt, 0)
        except OverflowError:  # far past the cap
            return self.max_s
        return min(self.max_s, grown)

    def delay(self, attempt: int, u: float) -> float:
        """Jittered delay for ``attempt``, given a uniform random ``u`` in ``[0, 1)``.

        The result is always within ``[min_s, max_s]``.
        """
        jittered = self.base_delay(attempt) * (1.0 - self.jitter * u)
        return min(self.max_s, max(self.min_s, jittered))


@attrs.frozen(kw_only=True)
class Backoff:
    """Backoff state of one child, as an immutable value.

    Attributes:
        policy: the schedule.
        attempt: consecutive crashes so far (restarts since the last reset).
    """

    policy: BackoffPolicy
    attempt: int = 0

    def next(self, *, now: float, started_at: float, u: float) -> tuple[float, Backoff]:
        """Delay before restarting a child that crashed at ``now``.

        Args:
            now: time of the crash.
            started_at: when the crashed incarnation started; if it has been
                up for ``reset_after_s`` the schedule starts over.
            u: a uniform random number in ``[0, 1)`` for the jitter.

        Returns:
            The delay in seconds and the state to use for the next crash.
        """
        attempt = 0 if now - started_at >= self.policy.reset_after_s else self.attempt
        return self.policy.delay(attempt, u), attrs.evolve(self, attempt=attempt + 1)
