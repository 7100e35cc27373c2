"""End-to-end behaviour of `df.llm.annotate` against real servers on 127.0.0.1.

Dedupe and broadcast, index alignment, awkward cells, chunking, label
normalisation, concurrency, faults, rate limits, streaming and the demo.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers.expected import sim_answer, varied_text
from helpers.local_server import LocalServer, user_text

import pandas_llm_annotate as pla
from pandas_llm_annotate.pipeline.chunking import estimate_tokens, split_text
from pandas_llm_annotate.simulator import SimulatorHandle, serve

LABELS = ["card_lost", "card_arrival", "refund", "other"]
SEEDS = [
    "I lost my card",
    "when is my card arrival",
    "refund my money please",
    "hello there",
    "my card was stolen and lost",
    "did the card arrival get delayed",
]


def distinct_texts(n: int) -> list[str]:
    return [f"{SEEDS[i % len(SEEDS)]} (ticket {i})" for i in range(n)]


def report() -> pla.Report:
    rep = pla.last_report()
    assert rep is not None
    return rep


# --- 1. dedupe, broadcast and the cache ------------------------------------------------


def test_duplicates_asked_once_and_rerun_is_served_by_the_cache(
    fresh_sim: SimulatorHandle, opts: dict[str, Any]
) -> None:
    distinct = distinct_texts(40)
    rows = distinct * 3 + distinct[:10]
    random.Random(0).shuffle(rows)
    df = pd.DataFrame({"text": rows})

    out = df.llm.annotate("text", labels=LABELS, **opts)

    rep = report()
    stats = fresh_sim.stats()
    assert (rep.rows, rep.distinct, rep.missing) == (130, 40, 0)
    assert rep.requests == 40
    assert stats["requests"] == 40
    assert sorted(stats["texts"]) == sorted(distinct)
    assert set(stats["texts"].values()) == {1}
    # Every row, duplicates included, carries the answer its text gets.
    assert out.tolist() == [sim_answer(t, labels=LABELS) for t in rows]
    assert rep.status == "finished"
    assert rep.failed == 0
    assert rep.calls_saved == 90

    again = df.llm.annotate("text", labels=LABELS, **opts)

    rep2 = report()
    assert rep2.requests == 0
    assert rep2.cache_hits == 40
    assert fresh_sim.stats()["requests"] == 40  # the server saw nothing new
    pd.testing.assert_series_equal(again, out)


def test_default_task_answers_are_lower_case_topics(
    fresh_sim: SimulatorHandle, opts: dict[str, Any]
) -> None:
    df = pd.DataFrame({"text": ["Where is my PARCEL Delivery?", "Refund REQUEST", "Where is my "
                                "PARCEL Delivery?"]})
    out = df.llm.annotate("text", **opts)
    expected = [sim_answer(t).lower() for t in df["text"]]
    assert out.tolist() == expected
    assert all(a == a.lower() for a in out)
    assert fresh_sim.stats()["requests"] == 2


def test_series_accessor_and_free_prompt(fresh_sim: SimulatorHandle,
                                         opts: dict[str, Any]) -> None:
    s = pd.Series(["Bonjour tout le monde", "Guten Morgen alle"], name="greeting")
    out = s.llm.annotate("Translate to English.", **opts)
    assert out.tolist() == [sim_answer(t, prompt="Translate to English.") for t in s]
    assert out.name == "greeting"
    assert out.index.equals(s.index)


# --- 2. index alignment ---------------------------------------------------------------

ALIGN_TEXTS = ["I lost my card", "when is my card arrival", "refund my money please",
               "hello there", "I lost my card", "refund my money please", "hello there",
               "when is my card arrival", "I lost my card"]


def _index(kind: str) -> pd.Index:
    n = len(ALIGN_TEXTS)
    if kind == "shuffled":
        order = list(range(n))
        random.Random(3).shuffle(order)
        return pd.Index([100 + i for i in order])
    if kind == "duplicates":
        return pd.Index([5, 5, 1, 1, 5, 0, 0, 2, 5])
    if kind == "strings":
        return pd.Index([f"row-{c}" for c in "qwertyuio"])
    if kind == "multi":
        return pd.MultiIndex.from_tuples(
            [("b", 2), ("a", 1), ("b", 1), ("a", 2), ("c", 0), ("a", 1), ("c", 9), ("b", 0),
             ("z", 1)],
            names=["group", "n"],
        )
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["shuffled", "duplicates", "strings", "multi"])
def test_result_is_aligned_to_any_index(kind: str, fresh_sim: SimulatorHandle,
                                        opts: dict[str, Any]) -> None:
    df = pd.DataFrame({"text": ALIGN_TEXTS}, index=_index(kind))
    # Sorting by text first means the row order differs from the order of first use.
    df = df.iloc[[8, 2, 0, 5, 1, 7, 3, 6, 4]]

    out = df.llm.annotate("text", labels=LABELS, **opts)

    assert out.index.equals(df.index)
    assert out.index.names == df.index.names
    alone = {
        text: pd.Series([text]).llm.annotate(labels=LABELS, **{**opts, "cache": False}).iloc[0]
        for text in set(ALIGN_TEXTS)
    }
    assert len(set(alone.values())) > 1  # the check below can tell rows apart
    for pos in range(len(df)):
        assert out.iloc[pos] == alone[df["text"].iloc[pos]], pos
    # Assigning back keeps each row's answer on its row.
    assigned = df.assign(label=out)
    assert assigned["label"].tolist() == [alone[t] for t in assigned["text"]]


# --- 3. awkward cells and chunking ----------------------------------------------------


def test_missing_and_odd_cells(fresh_sim: SimulatorHandle, opts: dict[str, Any]) -> None:
    big = varied_text(1_000_000)
    cells: list[Any] = [np.nan, None, pd.NA, "", "   ", 42, 3.5, "😀 my card is lost 😀",
                        "我的银行卡丢了，怎么办？", big, "\t\n", "I lost my card"]
    missing = [0, 1, 2, 3, 4, 10]
    df = pd.DataFrame({"text": pd.Series(cells, dtype=object, index=range(10, 22))})

    out = df.llm.annotate("text", labels=LABELS, **opts)

    rep = report()
    assert out.index.equals(df.index)
    assert out.iloc[missing].isna().all()
    present = [i for i in range(len(cells)) if i not in missing]
    assert out.iloc[present].notna().all()
    assert rep.missing == len(missing)
    assert rep.rows == len(cells)
    assert rep.distinct == len(present)
    assert out.iloc[5] == sim_answer("42", labels=LABELS)
    assert out.iloc[6] == sim_answer("3.5", labels=LABELS)
    for pos in (7, 8, 11):
        assert out.iloc[pos] == sim_answer(cells[pos], labels=LABELS)
    assert out.iloc[9] in LABELS

    # The 1 MB cell went out in chunks, each within the token budget.
    assert rep.chunks > rep.distinct
    assert rep.requests == rep.chunks
    stats = fresh_sim.stats()
    assert stats["requests"] == rep.requests
    small = {c for c in cells if isinstance(c, str)} | {"42", "3.5"}
    sent = [t for t in stats["texts"] if t not in small]
    assert len(sent) == rep.chunks - (rep.distinct - 1)
    assert max(estimate_tokens(t) for t in sent) <= 1000
    assert rep.failed == 0


def test_long_free_text_cell_joins_chunk_answers(fresh_sim: SimulatorHandle,
                                                 opts: dict[str, Any]) -> None:
    text = "".join(varied_text(3_000, seed=s).replace("Sentence", f"Part{s}") + "\n"
                   for s in range(5))
    out = pd.Series([text, "short text here"]).llm.annotate(
        "Summarise.", max_chunk_tokens=300, **opts)

    chunks = split_text(text, 300)
    assert len(chunks) > 1
    expected = "; ".join(dict.fromkeys(sim_answer(c, prompt="Summarise.") for c in chunks))
    assert out.iloc[0] == expected
    assert report().chunks == len(set(chunks)) + 1


def _chunk_reply(body: dict[str, Any]) -> str:
    text = user_text(body)
    if "POISON" in text:
        return "banana"
    return "refund" if "REFUND" in text else "card_lost"


def test_chunk_answers_vote_and_a_failed_chunk_fails_its_text(tmp_path: Path) -> None:
    def sentence(tag: str, i: int) -> str:
        return f"Sentence number {i:02d} is tagged {tag} here. "

    budget = 14  # each sentence (about 12 tokens) is a chunk of its own
    majority = "".join(sentence(t, i) for i, t in enumerate(["REFUND", "card", "card"]))
    tie = "".join(sentence(t, i) for i, t in enumerate(["REFUND", "card", "card", "REFUND"]))
    poisoned = "".join(sentence(t, i) for i, t in enumerate(["card", "POISON", "card"]))
    for text, n in ((majority, 3), (tie, 4), (poisoned, 3)):
        assert len(split_text(text, budget)) == n
    df = pd.DataFrame({"text": [majority, tie, poisoned, "short"]})

    with LocalServer(_chunk_reply) as server:
        out = df.llm.annotate("text", labels=LABELS, model="local", base_url=server.base_url,
                              max_chunk_tokens=budget, cache=tmp_path / "c", progress=False)

    assert out.iloc[0] == "card_lost"  # 2 votes to 1
    assert out.iloc[1] == "refund"  # 2 to 2: the earliest chunk wins
    assert pd.isna(out.iloc[2])  # one chunk failed: the whole text has no answer
    assert out.iloc[3] == "card_lost"
    rep = report()
    assert rep.failed == 1
    failure = rep.failures.iloc[0]
    assert failure["index"] == 2
    assert failure["raw_answer"] == "banana"
    assert "chunk 2/3" in failure["error"]


# --- 4. labels -------------------------------------------------------------------------

RAW = {
    "a": " Card_Lost.",
    "b": "**card lost**",
    "c": "Label: card_arrival",
    "d": "banana",
    "e": '"CARD-ARRIVAL"',
}


def test_answers_are_normalised_and_invalid_ones_listed_not_cached(tmp_path: Path) -> None:
    labels = ["card_lost", "card_arrival"]
    df = pd.DataFrame({"text": ["a", "b", "c", "d", "e", "d"]}, index=list("uvwxyz"))
    with LocalServer(lambda body: RAW[user_text(body)]) as server:
        kwargs: dict[str, Any] = dict(model="local", base_url=server.base_url,
                                      cache=tmp_path / "c", progress=False)
        out = df.llm.annotate("text", labels=labels, **kwargs)

        assert out.tolist()[:3] == ["card_lost", "card_lost", "card_arrival"]
        assert out["y"] == "card_arrival"
        assert out[["x", "z"]].isna().all()
        rep = report()
        assert rep.failed == 2
        failures = rep.failures
        assert sorted(failures["index"]) == ["x", "z"]
        assert set(failures["raw_answer"]) == {"banana"}
        assert set(failures["text"]) == {"d"}
        assert rep.to_dict()["failures"][0]["raw_answer"] == "banana"

        # Only valid answers were cached: the rerun asks for "d" alone, and again fails.
        again = df.llm.annotate("text", labels=labels, **kwargs)
        assert server.texts() == {"a": 1, "b": 1, "c": 1, "d": 2, "e": 1}
        assert report().requests == 1
        assert report().cache_hits == 4
        pd.testing.assert_series_equal(again, out)


def test_labels_must_be_a_list_not_a_string(fresh_sim: SimulatorHandle,
                                            opts: dict[str, Any]) -> None:
    df = pd.DataFrame({"text": ["x"]})
    with pytest.raises(ValueError, match=re.escape("labels=['abc']")) as info:
        df.llm.annotate("text", labels="abc", **opts)
    assert "one string" in str(info.value)
    assert fresh_sim.stats()["requests"] == 0


# --- 5. concurrency --------------------------------------------------------------------


def test_max_concurrency_is_respected(tmp_path: Path) -> None:
    with serve(latency=0.05, jitter=0.1) as sim:
        df = pd.DataFrame({"text": distinct_texts(100)})
        out = df.llm.annotate("text", labels=LABELS, model="m", base_url=sim.base_url,
                              max_concurrency=4, cache=tmp_path / "c", progress=False)
        stats = sim.stats()
    rep = report()
    assert out.notna().all()
    assert 2 <= stats["max_in_flight"] <= 4
    assert 1 <= rep.max_in_flight <= 4
    assert stats["requests"] == 100


# --- 6. faults, timeouts and rate limits -------------------------------------------


def label_on(sim: SimulatorHandle, rows: int, tmp_path: Path, **options: Any
             ) -> tuple[pd.DataFrame, pd.Series, dict[str, Any]]:
    """`rows` distinct texts labelled against `sim`; the frame, the answers and the
    simulator's counters after the run."""
    df = pd.DataFrame({"text": distinct_texts(rows)})
    out = df.llm.annotate("text", labels=LABELS, model="m", base_url=sim.base_url,
                          cache=tmp_path / "c", progress=False, **options)
    return df, out, sim.stats()


def test_faults_and_hangs_are_retried_until_every_row_is_labelled(tmp_path: Path) -> None:
    # With seed 3 the simulator's first 100 requests draw every fault kind (a hang 9th).
    with serve(latency=0.01, faults=0.1, hang=2.0, seed=3) as sim:
        df, out, stats = label_on(sim, 100, tmp_path, timeout=1.0, max_concurrency=16)
    rep = report()
    assert all(n > 0 for n in stats["faults"].values()), stats["faults"]
    assert out.notna().all()
    assert out.tolist() == [sim_answer(t, labels=LABELS) for t in df["text"]]
    assert rep.retries > 0
    assert rep.failed == 0
    assert rep.status == "finished"
    assert stats["ok"] == 100


def test_queueing_server_with_a_tight_timeout_does_not_storm(tmp_path: Path) -> None:
    """A server that answers one request at a time (0.1 s each) and finishes requests
    whose client gave up, like llama.cpp's: 8 sent at once with a 0.5 s timeout. The
    first burst's tail times out; after that the timeout guard keeps the queue inside
    the timeout, so at most that burst is retried, not a storm."""
    with serve(latency=0.1, jitter=0.0, workers=1) as sim:
        _, out, stats = label_on(sim, 60, tmp_path, timeout=0.5, max_concurrency=8)
    rep = report()
    assert out.notna().all(), rep.failures
    assert rep.failed == 0 and rep.status == "finished"
    assert 1 <= rep.retries <= 8, rep  # the first burst's tail, once
    assert stats["requests"] == 60 + rep.retries
    assert rep.window < 8


def test_rate_limited_server_every_row_still_labelled(tmp_path: Path) -> None:
    # 1200 RPM: a bucket of 20 requests refilled at 20/s, far below what 16 workers ask.
    with serve(latency=0.01, rpm=1200) as sim:
        _, out, stats = label_on(sim, 60, tmp_path, max_concurrency=16)
    rep = report()
    assert out.notna().all(), rep.failures
    assert rep.failed == 0
    assert stats["ok"] == 60


# --- 12. streaming ---------------------------------------------------------------------


def test_streaming_gives_the_same_answers_and_a_ttft(fresh_sim: SimulatorHandle,
                                                    opts: dict[str, Any]) -> None:
    df = pd.DataFrame({"text": distinct_texts(12) + ["I lost my card"] * 3})
    plain = df.llm.annotate("text", labels=LABELS, **{**opts, "cache": False})
    assert report().ttft_p50_s is None
    assert fresh_sim.stats()["streamed"] == 0

    streamed = df.llm.annotate("text", labels=LABELS, stream=True, **{**opts, "cache": False})

    rep = report()
    pd.testing.assert_series_equal(streamed, plain)
    assert rep.ttft_p50_s is not None
    assert rep.p50_s is not None
    assert 0 < rep.ttft_p50_s <= rep.p50_s
    assert fresh_sim.stats()["streamed"] == 13

    free = df["text"].llm.annotate("Say it shorter.", stream=True, **{**opts, "cache": False})
    assert free.tolist() == [sim_answer(t, prompt="Say it shorter.") for t in df["text"]]


# --- the demo ---------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_prints_first_run_and_rerun_reports(capsys: pytest.CaptureFixture[str]) -> None:
    from pandas_llm_annotate import demo

    demo.main(["--latency", "0.01"])

    out = capsys.readouterr().out
    first = re.search(r"first run: (<Report .*>)", out)
    rerun = re.search(r"rerun \(cache\): (<Report .*>)", out)
    assert first and rerun, out
    assert "1000 rows, 600 distinct, 0 cached, 600 requests" in first.group(1)
    assert " 0 failed" in first.group(1), first.group(1)
    assert "600 cached, 0 requests" in rerun.group(1), rerun.group(1)
    assert "default task" in out
    assert pla.config._configured == {}  # the demo leaves no settings behind
