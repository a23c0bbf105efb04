"""Writing rows: each batch in one immediate transaction, and the retention purge.

``BEGIN IMMEDIATE`` takes the write lock up front, so a batch either waits for
another process's lock (up to the busy timeout) or commits whole; a failure
rolls it back (:class:`~notifactor.adapters.sqlite_store.execution.ConnectionRunner`).
"""

from __future__ import annotations

import sqlite3

from notifactor.adapters.sqlite_rows import MultiRowInsert
from notifactor.adapters.sqlite_store.execution import ConnectionRunner
from notifactor.adapters.sqlite_store.rows import Row
from notifactor.adapters.sqlite_store.schema import EXPIRING_TABLES


async def write_rows(runner: ConnectionRunner, insert: MultiRowInsert, rows: list[Row]) -> None:
    """Write ``rows`` with ``insert`` in one transaction; no rows, no work."""
    if not rows:
        return

    def write(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        for sql, parameters in insert.statements(rows):
            db.execute(sql, parameters)
        db.execute("COMMIT")

    await runner.run(write)


async def delete_expired(runner: ConnectionRunner, now_us: int) -> int:
    """Delete every row that expires at or before ``now_us``; the number deleted."""

    def purge(db: sqlite3.Connection) -> int:
        db.execute("BEGIN IMMEDIATE")
        removed = 0
        for table in EXPIRING_TABLES:
            removed += db.execute(f"DELETE FROM {table} WHERE expires_us <= ?", (now_us,)).rowcount
        db.execute("COMMIT")
        return removed

    return await runner.run(purge)
