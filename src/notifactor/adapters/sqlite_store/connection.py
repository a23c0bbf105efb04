"""Opening the database file: WAL mode, the pragmas, and the schema.

The connection is opened in a worker thread with ``check_same_thread=False``
and in autocommit mode (``isolation_level=None``): the store's writes begin
and commit their own transactions, always from one thread at a time.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Final

import trio

from notifactor.adapters.sqlite_store.schema import RECORD_VERSION, SCHEMA, SCHEMA_VERSION
from notifactor.ports.notification_store import StoreError

SYNCHRONOUS_MODES: Final = ("OFF", "NORMAL", "FULL", "EXTRA")

#: WAL pages a commit may leave before it copies them back into the database
#: (SQLite's default is 1,000). Each row of the per-user index dirties a page
#: of its own, so a batch of 256 notifications writes about 256 pages; with the
#: default, every fourth batch copied them all back. At 10,000 (40 MiB of 4 KiB
#: pages) a page rewritten by many batches is copied once per checkpoint: a
#: third less time per row standalone, 4-6 % more dispatched per second.
WAL_AUTOCHECKPOINT_PAGES: Final = 10_000
#: What a checkpointed WAL file is cut back to, so a burst does not leave a
#: large file behind.
JOURNAL_SIZE_LIMIT_BYTES: Final = 64 * 1024 * 1024


def check_synchronous(synchronous: str) -> str:
    """The ``synchronous`` pragma value ``synchronous`` names, upper-cased.

    Raises:
        ValueError: not one of :data:`SYNCHRONOUS_MODES` (in any case).
    """
    mode = synchronous.upper()
    if mode not in SYNCHRONOUS_MODES:
        raise ValueError(f"bad synchronous mode: {synchronous!r}")
    return mode


def connect(path: str | Path, *, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and its schema; blocking.

    ``synchronous`` is a mode :func:`check_synchronous` returned.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
    db.executescript(SCHEMA)
    db.execute(RECORD_VERSION, (SCHEMA_VERSION, time.time_ns() // 1000))
    return db


async def open_connection(
    path: str | Path, *, synchronous: str, busy_timeout_ms: int
) -> sqlite3.Connection:
    """:func:`connect` in a worker thread, its SQLite errors as the port's.

    Raises:
        ValueError: a bad ``synchronous`` mode (before anything is opened).
        StoreError: SQLite could not open the file or create the schema.
    """
    mode = check_synchronous(synchronous)
    try:
        return await trio.to_thread.run_sync(
            lambda: connect(path, synchronous=mode, busy_timeout_ms=busy_timeout_ms)
        )
    except sqlite3.Error as error:
        raise StoreError(f"cannot open sqlite store at {path}: {error}") from error
