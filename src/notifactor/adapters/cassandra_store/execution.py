"""Sending the store's statements: by name, bounded in flight, errors translated.

Every request the store makes goes through one :class:`StatementRunner`, so
the ``trio.CapacityLimiter`` bounds the whole store's load on the cluster, a
closed store refuses work before it reaches the driver, and every driver error
comes out as a store error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio
from cassandra.query import BoundStatement, PreparedStatement

from notifactor.adapters.cassandra_session import CassandraSession
from notifactor.adapters.cassandra_store.errors import translated_errors
from notifactor.ports.notification_store import StoreError, TransientStoreError


class StatementRunner:
    """Binds and sends one store's prepared statements over its session.

    Args:
        prepared: the statements of
            :func:`~notifactor.adapters.cassandra_store.statements.prepare_statements`.
        max_in_flight: concurrent requests sent at most.
    """

    def __init__(
        self,
        session: CassandraSession,
        prepared: dict[str, PreparedStatement],
        *,
        max_in_flight: int,
    ) -> None:
        self._session = session
        self._prepared = prepared
        self._limiter = trio.CapacityLimiter(max_in_flight)
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def close(self) -> None:
        """Refuse every later request with :class:`StoreError`; the session stays open."""
        self._closed = True

    def bind(self, name: str, values: Sequence[Any]) -> BoundStatement:
        """The prepared statement ``name`` bound to ``values``."""
        return self._prepared[name].bind(values)

    async def query(self, name: str, params: Sequence[Any]) -> list[Any]:
        """Run the prepared statement ``name`` with ``params``; all its rows."""
        return await self.execute(self._prepared[name], params)

    async def execute(self, statement: Any, params: Sequence[Any] | None = None) -> list[Any]:
        """Run one statement (or batch) under the limiter; all its rows.

        Raises:
            StoreError: the store is closed, or the driver failed permanently.
            TransientStoreError: the driver failed in a way a retry may cure.
        """
        if self._closed:
            raise StoreError("store is closed")
        async with self._limiter:
            with translated_errors():
                return await self._session.execute(statement, params)

    async def execute_all(self, statements: list[Any]) -> None:
        """Run ``statements`` concurrently (the limiter still bounds them).

        A failure cancels the others. Store errors come out as one, like a
        single statement's: :class:`TransientStoreError` when every failure
        was transient (so the storage writer retries the write), else
        :class:`StoreError`. Anything else (a cancellation) is left as it is.
        """
        if not statements:
            return
        if len(statements) == 1:
            await self.execute(statements[0])
            return
        try:
            async with trio.open_nursery() as nursery:
                for statement in statements:
                    nursery.start_soon(self.execute, statement)
        except BaseExceptionGroup as group:
            error = one_store_error(group)
            if error is group:
                raise
            raise error from group


def one_store_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The store error standing for ``group``, or ``group`` itself if it holds anything else."""
    stores, rest = group.split(StoreError)
    if stores is None or rest is not None:
        return group
    failures = _leaves(stores)
    kind = (
        TransientStoreError
        if all(isinstance(f, TransientStoreError) for f in failures)
        else StoreError
    )
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    return kind(f"{failures[0]}{more}")


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            leaves += _leaves(error)
        else:
            leaves.append(error)
    return leaves
