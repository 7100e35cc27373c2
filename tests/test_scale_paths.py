"""The array paths a big column takes (plan, pieces, the cache lookup, the report's
tables, the answers spread back to rows), each checked against the plain per-row rule
on small, awkward inputs: duplicates, missing cells, chunked long cells shared between
texts, packed rows, a column partly cached. No timings here (see benchmarks/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers.expected import varied_text
from helpers.local_server import LocalServer, user_text

import pandas_llm_annotate as pla
from pandas_llm_annotate.pipeline import cache as cache_module
from pandas_llm_annotate.pipeline.cache import Cache, text_key, text_keys
from pandas_llm_annotate.pipeline.chunking import split_text
from pandas_llm_annotate.pipeline.pieces import Pieces
from pandas_llm_annotate.pipeline.plan import plan_column
from pandas_llm_annotate.simulator import SimulatorHandle

LABELS = ["card_lost", "card_arrival", "refund", "other"]


def per_row_plan(values: pd.Series) -> tuple[list[int], list[str]]:
    """The rule, one cell at a time: (positions of the rows with a text, their texts)."""
    positions, texts = [], []
    for i, cell in enumerate(values.to_numpy(dtype=object)):
        if cell is None or cell is pd.NA or (isinstance(cell, float) and np.isnan(cell)):
            continue
        text = cell if type(cell) is str else str(cell)
        if text.strip():
            positions.append(i)
            texts.append(text)
    return positions, texts


COLUMNS = {
    "duplicates and missing": pd.Series(
        ["b", np.nan, "a", None, "b", "", "  ", pd.NA, "a", "\t\n", "c", "b"], dtype=object),
    "numbers that are equal but print apart": pd.Series(
        [1, 1.0, True, "1", "True", "1.0", None, 2, 2.0, 0, False, ""], dtype=object),
    "string dtype": pd.Series(["x", None, "y", "x", "", " ", "z", "y"], dtype="string"),
    "blank first": pd.Series(["", " ", "q", "", "q", "r"]),
    "default str with missing": pd.Series(["q", None, "", np.nan, "q", " r ", "r"]),
    "arrow strings": pd.Series(["m", None, " ", "n", "m", ""], dtype="string[pyarrow]"),
    "all missing": pd.Series([None, np.nan, "", "  "], dtype=object),
    "empty": pd.Series([], dtype=object),
    "categorical": pd.Series(pd.Categorical(["u", "v", "u", None, "w"])),
}


@pytest.mark.parametrize("name", list(COLUMNS))
def test_plan_matches_the_per_row_rule(name: str) -> None:
    values = COLUMNS[name]
    positions, texts = per_row_plan(values)
    plan = plan_column(values)
    assert plan.rows == len(values)
    assert plan.positions.tolist() == positions
    assert [plan.texts[c] for c in plan.codes] == texts
    assert plan.texts == list(dict.fromkeys(texts))  # distinct, in order of first row
    assert all(type(t) is str for t in plan.texts)
    assert plan.rows_per_text().tolist() == [texts.count(t) for t in plan.texts]


def test_text_keys_are_text_key() -> None:
    texts = ["a", "", "😀 ü", "x\0y", "\ud800 lone surrogate"]
    assert text_keys("ns", texts) == [text_key("ns", t) for t in texts]


def awkward_texts(budget: int) -> list[str]:
    """Long texts whose chunks are shared: a text equal to another's chunk, a text with
    the same chunk twice, and two long texts with a chunk in common."""
    long = varied_text(budget * 12, seed=1)
    chunks = split_text(long, budget)
    twice = varied_text(200, seed=2) * 4  # four equal chunks
    other = chunks[1] + " " + varied_text(budget * 6, seed=3)
    return [long, chunks[1], twice, "short", other, chunks[0] + chunks[1]]


def per_text_keys(texts: list[str], budget: int) -> list[list[str]]:
    return [[text_key("ns", c) for c in (split_text(t, budget) if len(t) > budget else [t])]
            for t in texts]


def test_pieces_keys_users_and_texts_match_the_per_text_rule() -> None:
    budget = 60
    texts = awkward_texts(budget)
    keys = per_text_keys(texts, budget)
    assert len({k for ks in keys for k in ks}) < sum(map(len, keys))  # some are shared
    assert any(len(set(ks)) < len(ks) for ks in keys)  # a text with a chunk twice
    pieces = Pieces(texts, "ns", budget, np.ones(len(texts), dtype=np.int64))
    assert pieces.keys == keys
    users: dict[str, list[int]] = {}
    for tid, ks in enumerate(keys):
        for k in ks:
            users.setdefault(k, []).append(tid)
    assert pieces.users == users
    assert list(pieces.text) == list(users)  # order of first use
    chunks = {k: c for t, ks in zip(texts, keys, strict=True)
              for k, c in zip(ks, split_text(t, budget) if len(t) > budget else [t],
                              strict=True)}
    assert pieces.text == chunks
    assert all(pieces.users_of(k) == u for k, u in users.items())
    assert pieces.users_of("not a key of this run") == []


def rows_by_rule(keys: list[list[str]], rows: list[int], settled: list[str]) -> list[int]:
    """For each step of settling `settled` in order, the rows it completes."""
    pending = [len(ks) for ks in keys]
    out = []
    for key in settled:
        done = 0
        for tid, ks in enumerate(keys):
            for k in ks:
                if k == key:
                    pending[tid] -= 1
                    done += rows[tid] if pending[tid] == 0 else 0
        out.append(done)
    return out


@pytest.mark.parametrize("split", [0, 3, 7])
def test_settle_one_by_one_and_at_once_count_the_same_rows(split: int) -> None:
    budget = 60
    texts = awkward_texts(budget)
    rows = [3, 1, 2, 5, 1, 4]
    keys = per_text_keys(texts, budget)
    order = list(dict.fromkeys(k for ks in reversed(keys) for k in ks))
    expected = rows_by_rule(keys, rows, [*order, "another run's key"])

    one = Pieces(texts, "ns", budget, np.array(rows))
    assert [one.settle(k) for k in [*order, "another run's key"]] == expected

    many = Pieces(texts, "ns", budget, np.array(rows))
    first = many.settle_many([*order[:split], "another run's key"])
    assert first == sum(expected[:split])
    assert sum(many.settle(k) for k in order[split:]) == sum(expected[split:])
    assert sum(expected) == sum(rows)
    assert many.settle_many(order) == 0  # settled again (a late answer): no rows twice
    assert one.settle(order[0]) == 0


def test_answers_per_text_need_every_piece() -> None:
    budget = 60
    texts = awkward_texts(budget)
    keys = per_text_keys(texts, budget)
    rows = np.array([3, 1, 2, 5, 1, 4])
    pieces = Pieces(texts, "ns", budget, rows)
    answers = {k: f"a{i}" for i, k in enumerate(pieces.text)}
    missing = keys[4][-1]  # only the last text's own chunk: text 4 has no answer
    del answers[missing]

    def merge(parts: list[str]) -> str:
        return "+".join(parts)

    expected = [None if any(k not in answers for k in ks) else
                (answers[ks[0]] if len(ks) == 1 else merge([answers[k] for k in ks]))
                for ks in keys]
    assert expected[4] is None and expected.count(None) == 1
    assert pieces.text_answers(answers, merge) == expected
    assert pieces.rows_answered(answers) == int(rows.sum() - rows[4])
    assert pieces.rows_answered({}) == 0


@pytest.mark.parametrize("scan", [True, False])
def test_cache_get_many_by_scan_or_by_lookup(tmp_path: Path, scan: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "SCAN_FRACTION", 0.0 if scan else 10.0 ** 9)
    cache = Cache.open(tmp_path)
    ours = {text_key("ns", f"t{i}"): f"answer {i}" for i in range(2_500)}
    theirs = {text_key("other", f"t{i}"): "x" for i in range(500)}
    cache.put_many(ours.items(), "ns")
    cache.put_many(theirs.items(), "other")
    wanted = [*list(ours)[::2], text_key("ns", "never cached"), *list(ours)[:3]]
    try:
        assert cache.get_many(wanted) == {k: ours[k] for k in wanted if k in ours}
        assert cache.get_many([]) == {}
    finally:
        cache.close()


def _reply(body: dict[str, Any]) -> str:
    """"banana" (not a label) for texts with POISON, else a label."""
    text = user_text(body)
    return "banana" if "POISON" in text else "refund" if "REFUND" in text else "card_lost"


def test_a_column_partly_cached_with_packed_rows(fresh_sim: SimulatorHandle,
                                                 tmp_path: Path) -> None:
    """Duplicates, missing cells, chunked long cells: the first run labels part of the
    column; the second, packed, asks only for the rest and spreads every answer to its
    rows, aligned to the index, like a run with no cache."""
    long_a = varied_text(6_000, seed=4)
    long_b = split_text(long_a, 300)[2] + " " + varied_text(3_000, seed=5)
    distinct = [f"my card is lost (ticket {i})" for i in range(30)] + [long_a, long_b]
    cells: list[Any] = [distinct[(7 * i) % len(distinct)] for i in range(120)]
    for i in (3, 40, 77):
        cells[i] = None
    cells[5], cells[50], cells[90] = np.nan, "", "   "
    index = pd.RangeIndex(1_000, 1_120)[::-1]
    column = pd.Series(cells, index=index, dtype=object)
    opts = {"labels": LABELS, "model": "sim-model", "base_url": fresh_sim.base_url,
            "progress": False, "max_chunk_tokens": 300, "rows_per_request": 4}

    first = column.iloc[:40].llm.annotate(cache=str(tmp_path / "c"), **opts)
    asked_first = fresh_sim.stats()["requests"]
    fresh_sim.reset_stats()
    out = column.llm.annotate(cache=str(tmp_path / "c"), **opts)
    rep = pla.last_report()
    assert rep is not None and rep.failed == 0
    assert rep.cache_hits > 0 and asked_first > 0
    fresh_sim.reset_stats()
    alone = column.llm.annotate(cache=False, **opts)

    assert out.index.equals(column.index)
    pd.testing.assert_series_equal(out, alone)
    pd.testing.assert_series_equal(out.iloc[:40], first)
    missing = column.map(lambda c: not isinstance(c, str) or not c.strip())
    assert out[missing].isna().all() and out[~missing].notna().all()
    by_text = out[~missing].groupby(column[~missing]).nunique()
    assert (by_text == 1).all()  # each text has one answer, on every one of its rows


def test_failures_table_lists_each_row_of_a_failed_text(tmp_path: Path) -> None:
    cells: list[Any] = ["POISON one", "fine", None, "POISON one", "REFUND me", "POISON two",
                        "fine", ""]
    df = pd.DataFrame({"text": cells}, index=list("abcdefgh"))
    with LocalServer(_reply) as server:
        out = df.llm.annotate("text", labels=LABELS, model="local", base_url=server.base_url,
                              cache=tmp_path / "c", progress=False, max_retries=0,
                              rows_per_request=1)
    rep = pla.last_report()
    assert rep is not None
    assert out.tolist()[1] == "card_lost" and out.tolist()[4] == "refund"
    assert rep.failures["index"].tolist() == ["a", "d", "f"]
    assert rep.failures["text"].tolist() == ["POISON one", "POISON one", "POISON two"]
    assert (rep.failures["raw_answer"] == "banana").all()
