"""Running work on the store's one connection: one worker thread at a time.

Every request the store makes goes through one :class:`ConnectionRunner`, so
the ``trio.CapacityLimiter`` of 1 keeps SQLite from ever seeing concurrent use,
the Trio loop never blocks on disk, a closed store refuses work, and every
SQLite error comes out as a store error. Whatever a call raises, a
transaction it left open is rolled back first: the connection is shared, so
one failed batch must not break the next.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import trio

from notifactor.adapters.sqlite_store.errors import as_store_error
from notifactor.ports.notification_store import StoreError

T = TypeVar("T")


class ConnectionRunner:
    """Runs blocking functions of one connection in a worker thread, one at a time."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._limiter = trio.CapacityLimiter(1)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` in a worker thread under the limiter.

        Raises:
            StoreError: the runner is closed, or ``fn`` raised a SQLite error
                (:class:`~notifactor.ports.notification_store.TransientStoreError`
                when a retry may cure it).
        """
        if self._closed:
            raise StoreError("store is closed")

        def call() -> T:
            try:
                return fn(self._db)
            except sqlite3.Error as error:
                self._roll_back()
                raise as_store_error(error) from error
            except BaseException:
                # Not SQLite's error (a value it cannot store, a bug): the
                # connection is shared, so no transaction may outlive the call.
                self._roll_back()
                raise

        return await trio.to_thread.run_sync(call, limiter=self._limiter)

    def _roll_back(self) -> None:
        """End the transaction a failed call left open; blocking."""
        if self._db.in_transaction:
            self._db.rollback()

    async def aclose(self) -> None:
        """Close the connection once the running work is done; idempotent."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._db.close, limiter=self._limiter)
