"""Restart intensity: how many restarts a supervisor tolerates in a window.

This is the Erlang/OTP rule: a supervisor may restart children at most
``intensity`` times within any ``period_s`` seconds. One restart more means
something is wrong that restarting will not fix (a dead dependency, a bad
configuration), so the supervisor stops all its children and escalates to its
parent instead of looping forever.

The rule is pure and takes ``now`` as an argument so that it can be tested
against a simple model without a clock or a running tree.
"""

from __future__ import annotations

import bisect

import attrs


@attrs.frozen(kw_only=True)
class RestartIntensity:
    """A sliding window of recent restart times, as an immutable value.

    A restart at time ``t`` counts at ``now`` while ``now - t < period_s``.
    Times must be recorded in non-decreasing order (a monotonic clock).
    ``record`` returns a new value; ``exceeded`` is true once the window holds
    more than ``intensity`` restarts.

    Attributes:
        intensity: restarts tolerated within the window (``0``: none).
        period_s: window length in seconds, ``> 0``.
        restarts: times of the restarts still in the window, oldest first.
    """

    intensity: int
    period_s: float
    restarts: tuple[float, ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.intensity < 0:
            raise ValueError("intensity must be >= 0")
        if not self.period_s > 0:
            raise ValueError("period_s must be > 0")

    def record(self, now: float) -> RestartIntensity:
        """Return the window after one more restart at ``now``.

        Older entries that fell out of the window are dropped, so the tuple
        never holds more than ``intensity + 1`` entries: that is all it takes
        to tell whether the limit is exceeded.
        """
        kept = self._in_window(now)
        kept = kept[max(0, len(kept) - self.intensity) :]
        return attrs.evolve(self, restarts=(*kept, now))

    @property
    def exceeded(self) -> bool:
        """Whether the last recorded restart went over the limit."""
        if not self.restarts:
            return False
        return len(self._in_window(self.restarts[-1])) > self.intensity

    def count(self, now: float) -> int:
        """Restarts that still count at ``now``."""
        return len(self._in_window(now))

    def _in_window(self, now: float) -> tuple[float, ...]:
        # Restarts are recorded in time order, so the ones still counting are a
        # suffix: find where it starts by bisection.
        first = bisect.bisect_left(self.restarts, True, key=lambda t: now - t < self.period_s)
        return self.restarts[first:]
