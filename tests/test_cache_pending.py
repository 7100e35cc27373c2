"""Answers saved during a run go to the `pending` table (appended: cheap commits) and are
merged into `answers` when the run ends, or when the file is next opened after a run
was killed. Reads see both tables, last answer first."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from pandas_llm_annotate.pipeline.cache import Cache


def rows(path: Path, table: str) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute(f"SELECT key, answer FROM {table}").fetchall())


def killed_run(path: Path, answers: dict[str, str]) -> None:
    """A run that saved `answers` and was killed before it could merge them."""
    cache = Cache.open(path)
    for key, answer in answers.items():
        cache.save(key, answer, "ns")
    assert cache.flush()
    # The process dies here: its rows are committed, not merged (no `close_writer`).
    assert cache._writer is not None
    cache._writer.close()
    cache._conn.close()
    assert rows(path, "pending") == answers


def test_a_finished_run_merges_its_answers(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    cache = Cache.open(path)
    for i in range(250):
        cache.save(f"k{i}", f"a{i}", "ns")
    cache.save("k0", "again", "ns")  # answered twice: the last answer is kept
    assert cache.flush()
    assert cache.get_many(["k0", "k1", "nope"]) == {"k0": "again", "k1": "a1"}
    cache.close()
    merged = rows(path, "answers")
    assert rows(path, "pending") == {}
    assert len(merged) == 250 and merged["k0"] == "again" and merged["k249"] == "a249"


def test_a_killed_runs_answers_are_read_then_merged_when_the_next_run_starts(
        tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    killed_run(path, {"k1": "a1", "k2": "a2"})
    assert rows(path, "answers") == {}
    cache = Cache.open(path)
    assert cache.get_many(["k1", "k2", "k3"]) == {"k1": "a1", "k2": "a2"}  # read unmerged
    cache.merge_leftovers()  # what a run does first, off the event loop
    assert rows(path, "pending") == {} and rows(path, "answers") == {"k1": "a1", "k2": "a2"}
    assert cache.get_many(["k1", "k2", "k3"]) == {"k1": "a1", "k2": "a2"}
    assert len(cache) == 2
    cache.close()


def test_a_merge_by_another_process_between_the_two_reads_loses_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "answers.sqlite"
    killed_run(path, {"k1": "a1"})
    reader = Cache.open(path)
    read_pending = reader._pending_among

    def merged_first(keys: Sequence[str]) -> dict[str, str]:
        other = Cache.open(path)
        other.merge_leftovers()  # the rows move to `answers` just before `pending` is read:
        other.close()            # read after `answers`, they would be in neither read
        return read_pending(keys)

    monkeypatch.setattr(reader, "_pending_among", merged_first)
    assert reader.get_many(["k1"]) == {"k1": "a1"}
    reader.close()


@pytest.mark.parametrize("many", [False, True])  # lookups by key, or one scan of the table
def test_another_runs_pending_answers_are_read_and_win_over_older_ones(
        tmp_path: Path, many: bool) -> None:
    path = tmp_path / "answers.sqlite"
    reader = Cache.open(path)
    reader.put("k1", "old", "ns")
    for i in range(2, 40):
        reader.put(f"other{i}", "x", "ns")
    killed_run(path, {"k1": "new", "k2": "a2"})  # e.g. another process, still running
    keys = ["k1", "k2", "k3"] + ([f"other{i}" for i in range(2, 40)] if many else [])
    found = reader.get_many(keys)
    assert found["k1"] == "new" and found["k2"] == "a2" and "k3" not in found
    assert len(reader) == 40
    reader.close()


def test_a_file_from_before_the_pending_table_is_read_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL,"
                     " namespace TEXT NOT NULL, created REAL NOT NULL)")
        conn.execute("INSERT INTO answers VALUES ('k1', 'a1', 'ns', 0)")
    cache = Cache.open(path)
    assert cache.get_many(["k1"]) == {"k1": "a1"}
    cache.save("k2", "a2", "ns")
    cache.close()
    assert rows(path, "answers") == {"k1": "a1", "k2": "a2"}
