"""Stop signals: how a supervisor asks a child to stop gracefully.

Cancelling a task stops it at once, wherever it is. A graceful stop lets it
finish the message at hand, flush a batch, close sockets with a proper code.
So a supervisor first *requests* a stop through the child's ``StopSignal``
and only cancels the child once its shutdown budget has run out.

Each supervised child runs with its own signal in a context variable:
actor inboxes end when it fires, and any other child can wait for it with
``current_stop_signal().wait()`` (for example as a server's shutdown trigger).

A process may also install a *hurry* signal (:func:`set_hurry_signal`) that
every task it starts inherits: once requested, graceful stops are over.
Supervisors stop waiting for their children's budgets and cancel them, and
servers stop draining. It bounds how long a stop can take (a second SIGTERM,
or a stop that overran its grace period).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import TypeAlias

import trio

from notifactor.actors.latch import Latch

_Wait: TypeAlias = trio.CancelScope | Callable[[], None]


class StopSignal:
    """A one-way "please stop" flag that also cancels registered waits (or calls back)."""

    __slots__ = ("_latch", "_waits")

    def __init__(self) -> None:
        self._latch = Latch()
        # Nothing, one registration, or a set of them: most signals (one per
        # supervised child, one per WebSocket) hold one at most, and a set
        # costs 216 bytes; the process's hurry signal may hold one per session.
        self._waits: _Wait | set[_Wait] | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop was requested."""
        return self._latch.is_set()

    @property
    def registered(self) -> int:
        """How many waits and callbacks are registered (and not yet released)."""
        waits = self._waits
        if waits is None:
            return 0
        return len(waits) if isinstance(waits, set) else 1

    def request(self) -> None:
        """Request the stop; idempotent. Cancels every registered wait, calls every callback."""
        self._latch.set()
        waits, self._waits = self._waits, None
        if isinstance(waits, set):
            for wait in waits:
                _release(wait)
        elif waits is not None:
            _release(waits)

    async def wait(self) -> None:
        """Wait until a stop is requested."""
        await self._latch.wait()

    def register(self, wait: _Wait) -> None:
        """Cancel ``wait`` (a scope) or call it when the stop is requested (now, if it was).

        A callback must not wait or raise: it runs in the task requesting the stop.
        """
        waits = self._waits
        if self.requested:
            _release(wait)
        elif waits is None:
            self._waits = wait
        elif isinstance(waits, set):
            waits.add(wait)
        else:
            self._waits = {waits, wait}

    def unregister(self, wait: _Wait) -> None:
        """Forget ``wait`` once what it guards is over."""
        waits = self._waits
        if isinstance(waits, set):
            waits.discard(wait)
        elif waits is not None and waits == wait:
            self._waits = None


def _release(wait: _Wait) -> None:
    if isinstance(wait, trio.CancelScope):
        wait.cancel()
    else:
        wait()


_current: contextvars.ContextVar[StopSignal] = contextvars.ContextVar("notifactor_stop_signal")


def current_stop_signal() -> StopSignal:
    """The stop signal of the supervised child running in this task.

    Raises:
        RuntimeError: not called from (a task started by) a supervised child.
    """
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("not running under a supervisor") from None


def optional_stop_signal() -> StopSignal | None:
    """Like ``current_stop_signal`` but ``None`` outside a supervised child."""
    return _current.get(None)


def set_stop_signal(signal: StopSignal) -> contextvars.Token[StopSignal]:
    """Install ``signal`` for this task (and the tasks it spawns from now on)."""
    return _current.set(signal)


_hurry: contextvars.ContextVar[StopSignal] = contextvars.ContextVar("notifactor_hurry_signal")


def hurry_signal() -> StopSignal | None:
    """The process's hurry signal, if one was installed (see the module docstring)."""
    return _hurry.get(None)


def set_hurry_signal(signal: StopSignal) -> contextvars.Token[StopSignal]:
    """Install ``signal`` as the hurry signal of this task and the tasks it spawns."""
    return _hurry.set(signal)


@contextlib.contextmanager
def cut_short_by_hurry(scope: trio.CancelScope) -> Iterator[None]:
    """Cancel ``scope`` (a graceful wait) if the hurry signal fires while in the block."""
    hurry = hurry_signal()
    if hurry is None:
        yield
        return
    hurry.register(scope)
    try:
        yield
    finally:
        hurry.unregister(scope)
