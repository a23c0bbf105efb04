"""Multi-row ``INSERT`` statements for the SQLite store.

``executemany`` steps SQLite once per row, and Python's ``sqlite3`` releases
the GIL around every step. The store writes from a worker thread while the
Trio loop runs on the main thread, so each release hands the GIL to the busy
loop and the writer waits up to a switch interval (5 ms) to get it back: a
batch of 512 rows could take seconds under load. One statement with many
``VALUES`` tuples steps once per chunk instead, which keeps the writer's
throughput whatever the loop is doing.

The SQL of each chunk size is built once and reused, so SQLite's statement
cache keeps every variant prepared.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

# SQLite's default bound on the parameters of one statement (since 3.32).
MAX_PARAMETERS: Final = 32_766
DEFAULT_MAX_ROWS: Final = 512


class MultiRowInsert:
    """An ``INSERT ... VALUES`` of ``width`` columns, split into multi-row statements.

    Args:
        head: the statement up to and including ``VALUES``.
        width: the number of columns (``?`` per row).
        tail: what follows the values (``ON CONFLICT ...``), or empty.
        max_rows: the most rows one statement carries; lowered so a statement
            never has more than :data:`MAX_PARAMETERS` parameters.
    """

    def __init__(self, head: str, width: int, tail: str = "", max_rows: int = DEFAULT_MAX_ROWS):
        if width < 1 or max_rows < 1:
            raise ValueError("width and max_rows must be >= 1")
        self.width = width
        self.max_rows = max(1, min(max_rows, MAX_PARAMETERS // width))
        self._head = head.rstrip()
        self._tail = tail.strip()
        self._row = "(" + ", ".join("?" * width) + ")"
        self._sql: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        """The statement for ``rows`` rows (``1 <= rows <= max_rows``)."""
        if not 1 <= rows <= self.max_rows:
            raise ValueError(f"rows must be within 1..{self.max_rows}")
        sql = self._sql.get(rows)
        if sql is None:
            values = ", ".join([self._row] * rows)
            sql = f"{self._head} {values} {self._tail}".rstrip()
            self._sql[rows] = sql
        return sql

    def statements(self, rows: Sequence[Sequence[Any]]) -> Iterator[tuple[str, list[Any]]]:
        """``(sql, parameters)`` for each chunk of ``rows``, in order.

        Raises:
            ValueError: a row does not have ``width`` values.
        """
        for start in range(0, len(rows), self.max_rows):
            chunk = rows[start : start + self.max_rows]
            parameters: list[Any] = []
            for row in chunk:
                if len(row) != self.width:
                    raise ValueError(f"a row has {len(row)} values, expected {self.width}")
                parameters.extend(row)
            yield self.sql(len(chunk)), parameters
