"""Writing rows: each batch in one immediate transaction, and the retention purge.

The purge deletes expired rows in small transactions of its own, so writers
never wait for more than one of them. A row is expired when its stored
``expires_us`` has passed (retention when it was written) or when its record
time is past its tenant's retention now
(:func:`~notifactor.domain.retention.retention_cutoff_us`): the rule reads
apply, so a lowered ``retention_days`` frees the rows it hides at the next
purge rather than when their stored expiry comes.

``BEGIN IMMEDIATE`` takes the write lock up front, so a batch either waits for
another process's lock (up to the busy timeout) or commits whole; a failure
rolls it back (:class:`~notifactor.adapters.sqlite_store.execution.ConnectionRunner`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Final

from notifactor.adapters.sqlite_rows import MultiRowInsert
from notifactor.adapters.sqlite_store.execution import ConnectionRunner
from notifactor.adapters.sqlite_store.rows import Row
from notifactor.adapters.sqlite_store.schema import EXPIRING_TABLES, RECORD_TIMES
from notifactor.domain.retention import retention_cutoff_us
from notifactor.ports.notification_store import RetentionPolicy

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


async def delete_expired(
    runner: ConnectionRunner, now_us: int, retention_days: RetentionPolicy
) -> int:
    """Delete every row expired at ``now_us``; the number deleted.

    First the rows whose stored expiry has passed, then, tenant by tenant,
    the rows older than the tenant's retention now (a notification with its
    statuses). Each transaction deletes at most :data:`PURGE_BATCH_ROWS` rows
    of one table (twice that for notifications and their statuses), and the
    connection is free between two of them, so writes wait for one batch,
    never for the whole purge. A cancelled purge stops between batches; what
    it deleted so far stays deleted.
    """
    removed = 0
    for table, key in EXPIRING_TABLES.items():
        statement = _purge_batch_sql(table, key)
        removed += await _delete_all(
            runner, partial(_delete_batch, statement=statement, now_us=now_us)
        )
    for table, time_column in RECORD_TIMES.items():
        tenants = await runner.run(partial(_tenants_of, table))
        for tenant_id in tenants:
            cutoff_us = retention_cutoff_us(retention_days(tenant_id), now_us)
            delete = partial(
                _delete_past_retention,
                table=table,
                time_column=time_column,
                tenant_id=tenant_id,
                cutoff_us=cutoff_us,
            )
            removed += await _delete_all(runner, delete)
    return removed


async def _delete_all(
    runner: ConnectionRunner, delete_batch: Callable[[int, sqlite3.Connection], tuple[int, int]]
) -> int:
    """Run ``delete_batch(limit, db)`` until a batch falls short; the rows deleted.

    ``delete_batch`` returns (rows of the batch's table deleted, all rows
    deleted): the first tells whether more may follow.
    """
    removed = 0
    while True:
        batch = PURGE_BATCH_ROWS
        matched, deleted = await runner.run(partial(delete_batch, batch))
        removed += deleted
        if matched < batch:
            return removed


def _purge_batch_sql(table: str, key: tuple[str, ...]) -> str:
    columns = ", ".join(key)
    return (
        f"DELETE FROM {table} WHERE ({columns}) IN "
        f"(SELECT {columns} FROM {table} WHERE expires_us <= ? LIMIT ?)"
    )


def _delete_batch(
    limit: int, db: sqlite3.Connection, *, statement: str, now_us: int
) -> tuple[int, int]:
    db.execute("BEGIN IMMEDIATE")
    deleted = int(db.execute(statement, (now_us, limit)).rowcount)
    db.execute("COMMIT")
    return deleted, deleted


def _tenants_of(table: str, db: sqlite3.Connection) -> list[str]:
    """The tenants with rows in ``table``: one index seek per tenant, not a scan."""
    rows = db.execute(
        "WITH RECURSIVE tenants(id) AS ("
        f" SELECT min(tenant_id) FROM {table}"
        f" UNION ALL SELECT (SELECT min(tenant_id) FROM {table} WHERE tenant_id > tenants.id)"
        " FROM tenants WHERE tenants.id IS NOT NULL"
        ") SELECT id FROM tenants WHERE id IS NOT NULL"
    ).fetchall()
    return [tenant_id for (tenant_id,) in rows]


def _delete_past_retention(
    limit: int,
    db: sqlite3.Connection,
    *,
    table: str,
    time_column: str,
    tenant_id: str,
    cutoff_us: int,
) -> tuple[int, int]:
    """Delete up to ``limit`` of the tenant's rows made at or before ``cutoff_us``.

    A notification takes its statuses with it, in the same transaction: a
    status has no time of its own, and would otherwise wait for its stored
    expiry. Both deletes pick the same rows (one ordered index range).
    """
    columns = EXPIRING_TABLES[table]
    key = ", ".join(columns)
    # The (tenant_id, time, ...) index's order, so the range is read, not sorted.
    order = ", ".join([time_column, *(c for c in columns if c not in ("tenant_id", time_column))])
    oldest = (
        f"SELECT {key} FROM {table} WHERE tenant_id = ? AND {time_column} <= ?"
        f" ORDER BY {order} LIMIT ?"
    )
    params = (tenant_id, cutoff_us, limit)
    db.execute("BEGIN IMMEDIATE")
    statuses = 0
    if table == "notifications":
        statuses = db.execute(
            f"DELETE FROM delivery_status WHERE (tenant_id, notification_id) IN ({oldest})",
            params,
        ).rowcount
    deleted = db.execute(f"DELETE FROM {table} WHERE ({key}) IN ({oldest})", params).rowcount
    db.execute("COMMIT")
    return int(deleted), int(deleted) + int(statuses)
