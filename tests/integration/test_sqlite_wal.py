"""The SQLite file's write-ahead log settings, read back from a real database file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from notifactor.adapters.sqlite_store.connection import (
    JOURNAL_SIZE_LIMIT_BYTES,
    WAL_AUTOCHECKPOINT_PAGES,
    connect,
)

pytestmark = pytest.mark.integration


def pragma(db: sqlite3.Connection, name: str) -> Any:
    (value,) = db.execute(f"PRAGMA {name}").fetchone()
    return value


def test_the_store_connection_checkpoints_less_often_than_sqlite_by_default(
    tmp_path: Path,
) -> None:
    default = sqlite3.connect(tmp_path / "plain.db")
    db = connect(tmp_path / "store.db", synchronous="NORMAL", busy_timeout_ms=100)
    try:
        assert pragma(db, "journal_mode") == "wal"
        assert pragma(db, "wal_autocheckpoint") == WAL_AUTOCHECKPOINT_PAGES
        assert pragma(default, "wal_autocheckpoint") < WAL_AUTOCHECKPOINT_PAGES
        assert pragma(db, "journal_size_limit") == JOURNAL_SIZE_LIMIT_BYTES
        # The log may grow to its checkpoint size and stays within the cut-back size.
        assert WAL_AUTOCHECKPOINT_PAGES * pragma(db, "page_size") <= JOURNAL_SIZE_LIMIT_BYTES
    finally:
        db.close()
        default.close()


def test_batches_past_sqlites_default_stay_in_the_log_until_the_larger_threshold(
    tmp_path: Path,
) -> None:
    db = connect(tmp_path / "store.db", synchronous="NORMAL", busy_timeout_ms=100)
    try:
        db.execute("CREATE TABLE filler (v BLOB)")
        for _ in range(10):  # ten commits of about 250 pages each: 2.5 x the default threshold
            db.execute("BEGIN")
            db.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 4000,) for _ in range(250)])
            db.execute("COMMIT")
        _busy, log_frames, _checkpointed = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert 2500 <= log_frames < WAL_AUTOCHECKPOINT_PAGES
    finally:
        db.close()
