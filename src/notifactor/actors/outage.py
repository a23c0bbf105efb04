"""Waiting out an unreachable dependency instead of crashing on every attempt.

A loop that talks to Redis all the time (a partition consumer, the retry
scheduler, a gateway's delivery stream reader) would otherwise crash on each
failed call while Redis restarts or fails over; its supervisor would spend
its restart intensity in a second and give up, taking healthy siblings (and
open WebSocket sessions) with it. With :class:`Outage`, the loop pauses
(growing, capped), logs once when the outage starts and once when it ends,
and carries on where it was. Errors that are not "unreachable" still crash,
as they should.
"""

from __future__ import annotations

import logging

import attrs
import trio


def only_of(error: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``error`` is one of ``kinds``, or a group made only of them.

    A group that also holds a cancellation (or anything else) is not.
    """
    if isinstance(error, BaseExceptionGroup):
        return all(only_of(inner, kinds) for inner in error.exceptions)
    return isinstance(error, kinds)


def describe(error: BaseException) -> str:
    """``error`` for a log line; a group by the errors inside it (``Type: message; ...``)."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(_leaves(error))
    return str(error)


def _leaves(error: BaseException) -> list[str]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [f"{type(error).__name__}: {error}"]


@attrs.define
class Outage:
    """Consecutive failures of one dependency, and the pause before the next try.

    Args:
        what: what is unreachable, for the log (``"partition 3 stream"``).
        logger: where the start and the end of an outage are logged.
        first_pause_s: the pause after the first failure; it doubles after
            each further one, up to ``max_pause_s``.
        event: when set, the two lines carry ``"event"``
            ``{event}_unavailable`` and ``{event}_available``.
    """

    what: str
    logger: logging.Logger
    first_pause_s: float = 0.1
    max_pause_s: float = 1.0
    failures: int = 0
    event: str | None = None

    def pause_s(self) -> float:
        """The pause after the current number of failures."""
        return min(self.max_pause_s, self.first_pause_s * 2.0 ** max(0, self.failures - 1))

    async def failed(self, error: BaseException) -> None:
        """Count a failure (logged if it starts an outage) and pause."""
        self.noted(error)
        await trio.sleep(self.pause_s())

    def noted(self, error: BaseException) -> None:
        """Count a failure, logged if it starts an outage (for callers that pause on their own)."""
        self.failures += 1
        if self.failures == 1:
            self.logger.warning(
                "%s unreachable, waiting for it: %s",
                self.what,
                describe(error),
                extra=self._event("unavailable"),
            )

    def succeeded(self) -> None:
        """The dependency answered: log the end of an outage, if there was one."""
        if self.failures:
            self.logger.warning(
                "%s reachable again after %d failed attempts",
                self.what,
                self.failures,
                extra=self._event("available"),
            )
            self.failures = 0

    def _event(self, state: str) -> dict[str, str] | None:
        return None if self.event is None else {"event": f"{self.event}_{state}"}
