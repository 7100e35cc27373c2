"""The semantic cache end to end, against the simulator, with a fake embedder (fast)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers.semantic import BagOfWords

import pandas_llm_annotate as pla
from pandas_llm_annotate.semantic import INSTALL_HINT, SemanticUnavailable
from pandas_llm_annotate.semantic import embedder as embedder_mod
from pandas_llm_annotate.simulator import SimulatorHandle

LABELS = ["card_lost", "cancel", "payment", "other"]
NEAR = ["Cancel my card", "cancel my card!!", "I lost my card", "CANCEL MY CARD",
        "i lost my card.", "The movie was good", "The movie was not good"]


def report() -> pla.Report:
    rep = pla.last_report()
    assert rep is not None
    return rep


def test_near_duplicates_are_asked_once_and_listed(opts: dict[str, Any],
                                                   fresh_sim: SimulatorHandle) -> None:
    s = pd.Series(NEAR, index=[f"r{i}" for i in range(len(NEAR))])
    out = s.llm.annotate(labels=LABELS, semantic=True, embedder=BagOfWords(), **opts)
    rep = report()
    # "cancel my card" x3 -> 1 request, "lost my card" x2 -> 1, the movie pair -> 2 (guard)
    assert rep.requests == 4 == fresh_sim.stats()["requests"]
    assert rep.semantic_hit_count == 3 and rep.to_dict()["semantic_hits"] == 3
    assert rep.calls_saved == 3
    assert out["r1"] == out["r0"] == out["r3"] and out["r4"] == out["r2"]
    hits = rep.semantic_hits
    assert list(hits.columns) == ["index", "text", "cached_text", "similarity", "answer"]
    assert hits["index"].tolist() == ["r1", "r3", "r4"]
    assert hits["cached_text"].tolist() == ["Cancel my card", "Cancel my card", "I lost my card"]
    assert (hits["similarity"] > 0.99).all()
    assert rep.to_dict()["semantic_matches"][0]["text"] == "cancel my card!!"
    json.dumps(rep.to_dict())


def test_off_by_default_and_every_row_broadcast(opts: dict[str, Any]) -> None:
    s = pd.Series(NEAR * 3)
    s.llm.annotate(labels=LABELS, **opts)
    assert report().requests == len(NEAR) and report().semantic_hit_count == 0
    out = s.llm.annotate(labels=LABELS, semantic=0.99, embedder=BagOfWords(), cache=False,
                         progress=False, model=opts["model"], base_url=opts["base_url"])
    assert out.notna().all() and report().requests == 4
    assert len(report().semantic_hits) == 9  # 3 hit texts x 3 rows each


def test_history_persists_and_is_namespaced(opts: dict[str, Any], cache_dir: Path) -> None:
    first = BagOfWords(name="bow")
    pd.Series(["Cancel my card", "I lost my card"]).llm.annotate(
        labels=LABELS, semantic=True, embedder=first, **opts)
    assert report().requests == 2

    again = BagOfWords(name="bow")
    pd.Series(["cancel my card!!"]).llm.annotate(labels=LABELS, semantic=True, embedder=again,
                                                 **opts)
    assert report().requests == 0 and report().semantic_hit_count == 1
    assert again.embedded == ["cancel my card!!"]  # the history was not embedded again

    for other in ({"labels": LABELS[:3]}, {"labels": LABELS, "temperature": 0.5},
                  {"labels": LABELS, "model": "another-model"}):
        kwargs = {**opts, **other}
        pd.Series(["cancel my card!!"]).llm.annotate(semantic=True, embedder=BagOfWords(),
                                                     **kwargs)
        assert report().requests == 1 and report().semantic_hit_count == 0, other

    db = cache_dir / "answers.sqlite"
    assert (db.stat().st_mode & 0o777) == 0o600
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 5
        # a semantic hit is neither cached as an answer nor indexed: hits never chain
        texts = {r[0] for r in conn.execute("SELECT text FROM embeddings")}
    assert texts == {"Cancel my card", "I lost my card", "cancel my card!!"}


def test_api_key_never_reaches_the_cache(opts: dict[str, Any], cache_dir: Path) -> None:
    pd.Series(NEAR).llm.annotate(labels=LABELS, semantic=True, embedder=BagOfWords(),
                                 api_key="sk-secret-semantic-123", **opts)
    for f in cache_dir.iterdir():
        assert b"sk-secret-semantic-123" not in f.read_bytes()


def test_packed_requests_and_a_long_column(opts: dict[str, Any]) -> None:
    texts = [f"please cancel card number {i % 40}" for i in range(200)]
    texts += [t.upper() + "!" for t in texts[:40]]
    out = pd.Series(texts).llm.annotate(labels=LABELS, semantic=True, embedder=BagOfWords(),
                                        rows_per_request=5, **opts)
    rep = report()
    assert out.notna().all()
    assert rep.semantic_hit_count == 40 and rep.distinct == 80  # numbers kept them apart
    assert rep.requests == 8


def test_embedder_errors_fail_the_run_with_their_message(opts: dict[str, Any]) -> None:
    def broken(texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts) + 1, 3))

    with pytest.raises(ValueError, match="one row per text"):
        pd.Series(NEAR).llm.annotate(labels=LABELS, semantic=True, embedder=broken, **opts)
    assert report().status == "failed"


@pytest.mark.parametrize("bad", [{"semantic": 1.5}, {"semantic": 0}, {"semantic": "yes"},
                                 {"embedder": 42}])
def test_bad_settings_say_what_to_do(opts: dict[str, Any], bad: dict[str, Any]) -> None:
    with pytest.raises(pla.ConfigError, match=r"semantic|embedder"):
        pd.Series(["x"]).llm.annotate(**{**opts, **bad})


def test_missing_extra_names_the_install_command(opts: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.setattr(embedder_mod, "_models", {})
    with pytest.raises(SemanticUnavailable) as caught:
        pd.Series(NEAR).llm.annotate(labels=LABELS, semantic=True, **opts)
    assert INSTALL_HINT in str(caught.value)
    assert isinstance(caught.value, ImportError) and isinstance(caught.value, pla.ConfigError)


def test_core_never_imports_torch(opts: dict[str, Any]) -> None:
    code = (
        "import sys, pandas as pd, numpy as np, pandas_llm_annotate as pla\n"
        "from helpers.semantic import BagOfWords\n"
        f"o = dict(model='m', base_url={opts['base_url']!r}, progress=False, cache=False)\n"
        "pd.Series(['a b', 'A B!']).llm.annotate(labels=['x', 'y'], **o)\n"
        "pd.Series(['a b', 'A B!']).llm.annotate(labels=['x', 'y'], semantic=True,"
        " embedder=BagOfWords(), **o)\n"
        "assert pla.last_report().semantic_hit_count == 1\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'usearch')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_requests_start_before_the_embeddings_end(opts: dict[str, Any]) -> None:
    import threading
    import time

    starts: list[float] = []
    bow = BagOfWords()

    def slow(texts: list[str]) -> np.ndarray:
        starts.append(time.perf_counter())
        time.sleep(0.2)
        return bow(texts)

    texts = [f"question number {i} about my card" for i in range(200)]
    pd.Series(texts).llm.annotate(labels=LABELS, semantic=True, embedder=slow, **opts)
    ended = time.perf_counter()
    rep = pla.last_report()
    assert rep is not None and rep.requests == 200 and len(starts) == 4  # 16 + 64 + 64 + 56
    first_answer = ended - rep.elapsed_s + rep.answered_at[0]  # at the latest
    assert first_answer < starts[-1]  # the scheduler did not wait for every embedding
    assert not [t for t in threading.enumerate() if t.name == "pla-semantic-embed"]


def test_cancelling_a_run_stops_the_embedding_thread(opts: dict[str, Any]) -> None:
    import asyncio
    import threading
    import time

    def slow(texts: list[str]) -> np.ndarray:
        time.sleep(0.05)
        return BagOfWords()(texts)

    async def main() -> None:
        task = asyncio.ensure_future(pd.Series([f"text {i} of many" for i in range(2000)])
                                     .llm.aannotate(labels=LABELS, semantic=True,
                                                    embedder=slow, **opts))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert report().status == "interrupted"
    assert not [t for t in threading.enumerate() if t.name == "pla-semantic-embed"]


def test_a_model_that_cannot_be_loaded_is_semantic_unavailable(
        opts: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from pandas_llm_annotate.semantic import SemanticUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SemanticUnavailable, match="could not load the embedding model") as info:
        pd.Series(["a card", "a loan"]).llm.annotate(
            labels=LABELS, semantic=True, embedder="no-such-org/no-such-model-here", **opts)
    assert "semantic=False" in str(info.value)
    assert isinstance(info.value, pla.AnnotateError)
