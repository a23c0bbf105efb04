"""Multi-row INSERT statements: chunking, parameter bounds, and the SQL itself."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.adapters.sqlite_rows import MAX_PARAMETERS, MultiRowInsert

INSERT = MultiRowInsert("INSERT INTO t (k, v) VALUES", 2, "ON CONFLICT (k) DO NOTHING")


@given(
    rows=st.lists(st.tuples(st.integers(), st.integers()), max_size=1200),
    max_rows=st.integers(min_value=1, max_value=600),
)
def test_chunks_carry_every_row_once_in_order(rows: list[tuple[int, int]], max_rows: int) -> None:
    insert = MultiRowInsert("INSERT INTO t (k, v) VALUES", 2, max_rows=max_rows)
    flattened: list[int] = []
    for sql, parameters in insert.statements(rows):
        assert sql.count("?") == len(parameters) <= 2 * max_rows
        assert parameters  # no empty statement
        flattened.extend(parameters)
    assert flattened == [value for row in rows for value in row]


@given(width=st.integers(min_value=1, max_value=40_000))
def test_a_statement_never_exceeds_the_parameter_bound(width: int) -> None:
    insert = MultiRowInsert("INSERT INTO t VALUES", width)
    assert insert.max_rows >= 1
    assert insert.max_rows * width <= max(MAX_PARAMETERS, width)


def test_rows_of_the_wrong_width_are_refused() -> None:
    with pytest.raises(ValueError, match="expected 2"):
        list(INSERT.statements([(1, 2), (3,)]))
    with pytest.raises(ValueError, match="rows must be"):
        INSERT.sql(0)
    with pytest.raises(ValueError):
        MultiRowInsert("INSERT INTO t VALUES", 0)


def test_an_upsert_with_a_key_twice_merges_as_two_statements_would() -> None:
    upsert = MultiRowInsert(
        "INSERT INTO t (k, v) VALUES", 2, "ON CONFLICT (k) DO UPDATE SET v = max(v, excluded.v)"
    )
    rows = [("a", 1), ("b", 5), ("a", 7), ("a", 3), ("b", 2)]
    one = sqlite3.connect(":memory:")
    many = sqlite3.connect(":memory:")
    for db in (one, many):
        db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    for sql, parameters in upsert.statements(rows):
        one.execute(sql, parameters)
    for row in rows:
        many.execute(upsert.sql(1), row)
    query = "SELECT k, v FROM t ORDER BY k"
    assert one.execute(query).fetchall() == many.execute(query).fetchall() == [("a", 7), ("b", 5)]


def test_the_sql_of_each_size_is_built_once() -> None:
    assert INSERT.sql(3) is INSERT.sql(3)
    assert INSERT.sql(2) == "INSERT INTO t (k, v) VALUES (?, ?), (?, ?) ON CONFLICT (k) DO NOTHING"
