"""How many lines of one kind a second reach the log at their own level.

A line per event is what an operator wants while events are rare, and a
flood when a dependency is down and every event fails the same way (a
storage outage fails every notification's attempt). :class:`LogBudget`
lets at most ``per_s`` lines through in each one-second window; the rest go
to debug level, and the next line let through says how many were held
back. Pure: the caller passes the clock.
"""

from __future__ import annotations

import math

import attrs


@attrs.define
class LogBudget:
    """At most ``per_s`` lines in each one-second window at their own level.

    Attributes:
        per_s: lines let through per window (at least 1).
        held_back: lines sent to debug level since the last one let through.
    """

    per_s: int = 5
    held_back: int = 0
    _window_start: float = -math.inf
    _used: int = 0

    def __attrs_post_init__(self) -> None:
        if self.per_s < 1:
            raise ValueError(f"per_s must be at least 1: {self.per_s}")

    def take(self, now: float) -> int | None:
        """Whether a line at ``now`` (seconds) is let through.

        Returns:
            None when it is over the budget (log it at debug level);
            otherwise how many lines were held back before it.
        """
        if now - self._window_start >= 1.0:
            self._window_start, self._used = now, 0
        if self._used >= self.per_s:
            self.held_back += 1
            return None
        self._used += 1
        held, self.held_back = self.held_back, 0
        return held
