"""Writing rows: each batch in one immediate transaction, and the retention purge.

The purge deletes expired rows in small transactions of its own, so writers
never wait for more than one of them.

``BEGIN IMMEDIATE`` takes the write lock up front, so a batch either waits for
another process's lock (up to the busy timeout) or commits whole; a failure
rolls it back (:class:`~notifactor.adapters.sqlite_store.execution.ConnectionRunner`).
"""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import Final

from notifactor.adapters.sqlite_rows import MultiRowInsert
from notifactor.adapters.sqlite_store.execution import ConnectionRunner
from notifactor.adapters.sqlite_store.rows import Row
from notifactor.adapters.sqlite_store.schema import EXPIRING_TABLES

PURGE_BATCH_ROWS: Final = 2000
"""Most rows one purge transaction deletes (a few milliseconds of the connection)."""


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
    """Delete every row that expires at or before ``now_us``; the number deleted.

    Each transaction deletes at most :data:`PURGE_BATCH_ROWS` rows of one
    table, and the connection is free between two of them, so writes wait
    for one batch, never for the whole purge. A cancelled purge stops
    between batches; what it deleted so far stays deleted.
    """
    removed = 0
    for table, key in EXPIRING_TABLES.items():
        statement = _purge_batch_sql(table, key)
        while True:
            batch = PURGE_BATCH_ROWS
            deleted = await runner.run(partial(_delete_batch, statement, now_us, batch))
            removed += deleted
            if deleted < batch:
                break
    return removed


def _purge_batch_sql(table: str, key: tuple[str, ...]) -> str:
    columns = ", ".join(key)
    return (
        f"DELETE FROM {table} WHERE ({columns}) IN "
        f"(SELECT {columns} FROM {table} WHERE expires_us <= ? LIMIT ?)"
    )


def _delete_batch(statement: str, now_us: int, limit: int, db: sqlite3.Connection) -> int:
    db.execute("BEGIN IMMEDIATE")
    deleted = db.execute(statement, (now_us, limit)).rowcount
    db.execute("COMMIT")
    return int(deleted)
