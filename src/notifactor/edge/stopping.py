"""Loops that end on their supervisor's graceful stop request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from notifactor.actors.stop import optional_stop_signal


@contextmanager
def until_stop_requested() -> Iterator[trio.CancelScope]:
    """A cancel scope that the current child's stop signal cancels (if there is one).

    Code inside ends at its next checkpoint when the stop is requested; what
    follows the ``with`` block runs as the graceful part of the stop.
    """
    stop = optional_stop_signal()
    scope = trio.CancelScope()
    if stop is not None:
        stop.register(scope)
    try:
        with scope:
            yield scope
    finally:
        if stop is not None:
            stop.unregister(scope)
