"""The writer thread alone: a group of rows becomes a few multi-row INSERTs in one
transaction; every row lands, and a key written twice keeps its last answer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pandas_llm_annotate.pipeline.cache_writer import CHUNK, CacheWriter

SQL = "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)"


@pytest.mark.parametrize("n", [1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7])
def test_every_row_of_a_group_is_written_and_the_last_answer_wins(tmp_path: Path,
                                                                  n: int) -> None:
    conn = sqlite3.connect(tmp_path / "c.sqlite", isolation_level=None,
                           check_same_thread=False)
    conn.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, answer TEXT, ns TEXT, t REAL)")
    writer = CacheWriter(conn, SQL)
    for i in range(n):
        writer.add((f"k{i}", f"a{i}", "ns", float(i)))
    writer.add(("k0", "again", "ns", 0.0))  # the same key later in the group
    assert writer.flush()
    writer.close()
    rows = dict(conn.execute("SELECT key, answer FROM answers").fetchall())
    assert len(rows) == n and writer.written == n + 1 and writer.lost == 0
    assert rows["k0"] == "again" and all(rows[f"k{i}"] == f"a{i}" for i in range(1, n))


def test_one_statement_holds_a_chunk_of_rows() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    writer = CacheWriter(conn, SQL)
    try:
        sql = writer._many(3)
    finally:
        writer.close()
    assert sql == ("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?), (?, ?, ?, ?), "
                   "(?, ?, ?, ?)")
