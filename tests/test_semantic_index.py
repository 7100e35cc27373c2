"""The semantic index: exact threshold behaviour, search, persistence, namespacing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers.semantic import Fixed, at_angle

from pandas_llm_annotate.pipeline.cache import Cache, text_key
from pandas_llm_annotate.report.metrics import Metrics
from pandas_llm_annotate.semantic.embedder import resolve
from pandas_llm_annotate.semantic.index import VectorIndex, usearch_available
from pandas_llm_annotate.semantic.stage import Hit, SemanticStage
from pandas_llm_annotate.semantic.store import EmbeddingStore


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_matrix_search_matches_brute_force() -> None:
    data, queries = unit_rows(1000, 16), unit_rows(20, 16, seed=1)
    index = VectorIndex(16)
    index.add(data[:300])
    index.add(data[300:])  # grows past its first allocation
    sims, ids = index.search(queries, 5)
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :5]
    assert index.backend == "matrix" and len(index) == 1000
    assert (ids == truth).all()
    assert np.allclose(sims, np.take_along_axis(queries @ data.T, truth, axis=1), atol=1e-5)


def test_search_pads_when_the_index_is_small() -> None:
    index = VectorIndex(4)
    assert (index.search(unit_rows(2, 4), 3)[1] == -1).all()
    index.add(unit_rows(2, 4))
    sims, ids = index.search(unit_rows(1, 4, seed=3), 5)
    assert sorted(ids[0, :2].tolist()) == [0, 1] and (ids[0, 2:] == -1).all()
    assert np.isneginf(sims[0, 2:]).all()


@pytest.mark.skipif(not usearch_available(), reason="usearch is not installed")
def test_past_the_matrix_limit_it_moves_to_usearch() -> None:
    data = unit_rows(2000, 32)
    index = VectorIndex(32, matrix_limit=500)
    index.add(data[:400])
    index.add(data[400:])
    assert index.backend == "usearch" and len(index) == 2000
    sims, ids = index.search(data[:50], 3)
    assert (ids[:, 0] == np.arange(50)).mean() >= 0.95  # each finds itself
    assert np.allclose(sims[ids[:, 0] == np.arange(50), 0], 1.0, atol=1e-4)


# -- the stage, driven by hand --------------------------------------------------------

async def drive(stage: SemanticStage, fail: set[str] = frozenset()) -> list[tuple[str, ...]]:  # type: ignore[assignment]
    """Run the job stream, answering each asked piece 'A:<text>' (or failing it)."""
    asked: list[tuple[str, ...]] = []
    async for job in stage.jobs():
        asked.append(job)
        for key in job:
            stage.answered(key, None if stage.texts[key] in fail else "A:" + stage.texts[key])
    stage.close()
    return asked


def make_stage(texts: list[str], embed: Fixed, threshold: float,
               store: EmbeddingStore | None = None) -> tuple[SemanticStage, list[Hit]]:
    hits: list[Hit] = []
    pieces = {f"k{i}": t for i, t in enumerate(texts)}
    stage = SemanticStage(list(pieces), pieces, threshold=threshold, embedder=resolve(embed),
                          store=store, rows_per_job=1, on_hit=hits.append, metrics=Metrics())
    return stage, hits


@pytest.mark.parametrize(("cosine", "threshold", "hit"), [
    (0.9600, 0.95, True), (0.9500, 0.95, True), (0.9490, 0.95, False),
    (0.9900, 0.99, True), (0.9899, 0.99, False), (1.0, 1.0, True),
])
def test_threshold_is_exact(cosine: float, threshold: float, hit: bool) -> None:
    embed = Fixed({"cancel my card": at_angle(1.0), "Cancel my card!": at_angle(cosine)})
    stage, hits = make_stage(["cancel my card", "Cancel my card!"], embed, threshold)
    asked = asyncio.run(drive(stage))
    assert len(asked) == (1 if hit else 2)
    if hit:
        assert hits[0].source_text == "cancel my card"
        assert hits[0].answer == "A:cancel my card"
        assert hits[0].similarity == pytest.approx(cosine, abs=1e-4)


def test_guards_win_over_cosine() -> None:
    same = at_angle(1.0)
    embed = Fixed({"the movie was good": same, "the movie was not good": same})
    stage, hits = make_stage(["the movie was good", "the movie was not good"], embed, 0.9)
    assert len(asyncio.run(drive(stage))) == 2 and not hits


def test_a_follower_of_a_failed_representative_is_asked_itself() -> None:
    texts = ["cancel my card", "cancel my card please", "other thing"]
    embed = Fixed({texts[0]: at_angle(1.0), texts[1]: at_angle(0.99), texts[2]: at_angle(0.0)})
    stage, hits = make_stage(texts, embed, 0.95)
    asked = asyncio.run(drive(stage, fail={"cancel my card"}))
    assert [stage.texts[j[0]] for j in asked] == [texts[0], texts[2], texts[1]]
    assert not hits


def test_followers_reuse_the_representative_and_hits_never_chain() -> None:
    # b is close to a, c close to b but not to a: c must not reuse a through b.
    a, b, c = at_angle(1.0), at_angle(0.97), at_angle(0.88)
    embed = Fixed({"text a": a, "text b": b, "text c": c})
    stage, hits = make_stage(["text a", "text b", "text c"], embed, 0.95)
    asked = asyncio.run(drive(stage))
    assert [stage.texts[j[0]] for j in asked] == ["text a", "text c"]
    assert [(h.text, h.source_text) for h in hits] == [("text b", "text a")]


# -- persistence ----------------------------------------------------------------------

def test_store_round_trip_and_namespacing(tmp_path: Path) -> None:
    cache = Cache.open(tmp_path / "c")
    key = text_key("ns1", "hello")
    cache.put(key, "greeting", "ns1")
    store = EmbeddingStore(cache.path, "ns1", "emb")
    store.put(key, "hello", np.array([0.6, 0.8], dtype=np.float32))
    store.put(text_key("ns1", "unanswered"), "unanswered", np.array([1, 0], dtype=np.float32))
    store.close()
    cache.close()

    reopened = Cache.open(tmp_path / "c")
    keys, texts, answers, vectors = EmbeddingStore(reopened.path, "ns1", "emb").load()
    assert (keys, texts, answers) == ([key], ["hello"], ["greeting"])  # answered ones only
    assert vectors is not None and np.allclose(vectors, [[0.6, 0.8]])
    assert EmbeddingStore(reopened.path, "ns2", "emb").load()[0] == []
    assert EmbeddingStore(reopened.path, "ns1", "other-model").load()[0] == []
    assert (reopened.path.stat().st_mode & 0o777) == 0o600
    with sqlite3.connect(reopened.path) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(embeddings)")]
    assert cols == ["namespace", "embedder", "key", "text", "dim", "vector", "created"]


def test_history_serves_a_new_session_without_re_embedding(tmp_path: Path) -> None:
    cache = Cache.open(tmp_path / "c")
    embed = Fixed({"cancel my card": at_angle(1.0), "please cancel my card": at_angle(0.98)})
    store = EmbeddingStore(cache.path, "ns", "callable:fixed")
    stage, _ = make_stage(["cancel my card"], embed, 0.95, store)
    cache.put("k0", "A:cancel my card", "ns")
    asyncio.run(drive(stage))

    calls: list[list[str]] = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return embed(texts)

    counting.name = "fixed"  # type: ignore[attr-defined]
    store2 = EmbeddingStore(cache.path, "ns", "callable:fixed")
    hits: list[Hit] = []
    stage2 = SemanticStage(["k9"], {"k9": "please cancel my card"}, threshold=0.95,
                           embedder=resolve(counting), store=store2, rows_per_job=1,
                           on_hit=hits.append, metrics=Metrics())
    assert asyncio.run(drive(stage2)) == []
    assert calls == [["please cancel my card"]]  # the history was read, not embedded again
    assert hits[0].source_text == "cancel my card" and hits[0].answer == "A:cancel my card"
    cache.close()


def test_an_index_past_the_matrix_limit_without_usearch_fails_before_asking(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pandas_llm_annotate.semantic import INSTALL_HINT, SemanticUnavailable
    from pandas_llm_annotate.semantic import stage as stage_mod

    monkeypatch.setattr(stage_mod, "usearch_available", lambda: False)
    texts = [f"text {chr(97 + i)}" for i in range(5)]
    embed = Fixed({t: at_angle(i / 10) for i, t in enumerate(texts)})
    pieces = {f"k{i}": t for i, t in enumerate(texts)}
    stage = SemanticStage(list(pieces), pieces, threshold=0.9, embedder=resolve(embed),
                          store=None, rows_per_job=1, on_hit=lambda hit: None,
                          metrics=Metrics(), matrix_limit=3)
    with pytest.raises(SemanticUnavailable, match="usearch") as caught:
        asyncio.run(drive(stage))
    assert INSTALL_HINT in str(caught.value)


@pytest.mark.skipif(not usearch_available(), reason="usearch is not installed")
def test_a_usearch_graph_is_saved_and_reloaded_by_the_next_session(tmp_path: Path) -> None:
    names = ["card lost", "pin blocked", "fee charged", "refund asked", "top up failed",
             "transfer pending", "cash withdrawal"]
    basis = np.eye(16)
    embed = Fixed({t: basis[i] for i, t in enumerate(names)}
                  | {"Card lost!": (basis[0] + 0.1 * basis[9]) / np.sqrt(1.01),
                     "pin blocked please": (basis[1] + 0.1 * basis[9]) / np.sqrt(1.01)})
    cache = Cache.open(tmp_path / "c")
    pieces = {text_key("ns", t): t for t in names}
    for key, text in pieces.items():
        if text != "pin blocked":
            cache.put(key, "A:" + text, "ns")  # what the core writes for valid answers

    def session(todo: dict[str, str], fail: set[str] = frozenset()) -> tuple[  # type: ignore[assignment]
            SemanticStage, list[Hit]]:
        hits: list[Hit] = []
        stage = SemanticStage(list(todo), todo, threshold=0.95, embedder=resolve(embed),
                              store=EmbeddingStore(cache.path, "ns", "callable:fixed"),
                              rows_per_job=1, on_hit=hits.append, metrics=Metrics(),
                              matrix_limit=4)
        asyncio.run(drive(stage, fail=fail))
        return stage, hits

    first, _ = session(pieces, fail={"pin blocked"})
    assert first._index is not None and first._index.backend == "usearch"
    ann = EmbeddingStore(cache.path, "ns", "callable:fixed").ann_path
    assert ann.exists() and (ann.stat().st_mode & 0o777) == 0o600

    again = {text_key("ns", t): t for t in ("Card lost!", "pin blocked please")}
    second, hits = session(again)
    assert second._saved_size == len(names)  # loaded, not rebuilt
    assert [(h.text, h.source_text) for h in hits] == [("Card lost!", "card lost")]
    assert second._dead == {names.index("pin blocked")}  # its answer never came
    cache.close()
