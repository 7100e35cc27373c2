"""The estimate's prompt tokens against what servers count: the simulator (its own
BPE-like count, `simulator/tokens.py`, not the client's estimate) and, marked
`real_llm`, llama.cpp with SmolLM2's tokenizer. The 77 banking77 intents are snake_case
names and packed rows are JSON: the two things the plain ≈4-characters-per-token count
missed (25 % under on llama.cpp). `benchmarks/estimate.py` measures more rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.real_llm import banking77, shared_data_missing

import pandas_llm_annotate as pla
from pandas_llm_annotate import llamacpp
from pandas_llm_annotate.simulator import serve
from pandas_llm_annotate.text import estimate_prompt_tokens, estimate_tokens

MARGIN = 0.15  # |predicted / actual - 1| for the first, uncalibrated estimate


def test_prompt_count_adds_underscores_and_quote_pairs() -> None:
    assert estimate_prompt_tokens("plain words here") == estimate_tokens("plain words here")
    assert estimate_prompt_tokens("card_payment_fee") == estimate_tokens("card_payment_fee") + 2
    assert estimate_prompt_tokens('{"id": "1"}') == estimate_tokens('{"id": "1"}') + 2
    assert estimate_prompt_tokens("") == 0


def errors(base_url: str, model: str, rows: int, k: int | str, cache: Path,
           **extra: Any) -> tuple[float, float]:
    """The first estimate's prompt and completion token errors against the run's `usage`."""
    reason = shared_data_missing()
    if reason is not None:
        pytest.skip(reason)
    frame, labels = banking77(rows, seed=3)
    options = {"model": model, "base_url": base_url, "cache": str(cache), "progress": False,
               "rows_per_request": k, **extra}
    est = frame.llm.estimate("text", labels=labels, **options)
    assert est.calibrated_from == 0
    frame.llm.annotate("text", labels=labels, **options)
    rep = pla.last_report()
    assert rep is not None and rep.prompt_tokens > 0
    assert rep.requests == est.requests  # no retry: the same requests were counted
    return (est.prompt_tokens / rep.prompt_tokens - 1,
            est.completion_tokens / rep.completion_tokens - 1)


@pytest.mark.parametrize("k", [1, "auto"])
def test_prompt_estimate_against_the_simulator(k: int | str, tmp_path: Path) -> None:
    with serve(latency=0.0) as sim:
        err, completion = errors(sim.base_url, "gpt-4o-mini", 120, k, tmp_path)
    assert abs(err) < MARGIN, f"prompt estimate {err:+.1%} off the simulator's count"
    # the mean label's tokens per row, not the longest label's (that is the bound)
    assert abs(completion) < MARGIN, f"completion estimate {completion:+.1%} off"


@pytest.fixture(scope="module")
def llama() -> Iterator[llamacpp.LlamaCppServer]:
    reason = llamacpp.unavailable()
    if reason is not None:
        pytest.skip(f"no real LLM here: {reason}")
    with llamacpp.serve_llamacpp() as server:
        yield server


@pytest.mark.real_llm
def test_prompt_estimate_against_llama_cpp(llama: llamacpp.LlamaCppServer,
                                           tmp_path: Path) -> None:
    err, _ = errors(llama.base_url, llama.model, 6, 1, tmp_path, timeout=120)
    assert abs(err) < MARGIN, f"prompt estimate {err:+.1%} off llama.cpp's usage"
