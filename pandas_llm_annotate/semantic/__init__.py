"""Semantic cache: reuse the answer of a near-identical text, safely.

Turned on per call with `annotate(..., semantic=True)` (threshold `DEFAULT_THRESHOLD`) or
`semantic=0.97`. Modules (each small; only `embedder` imports torch, and only when used):

- `guards`: false friends (negation, numbers, amounts, dates, entities) never merge.
- `embedder`: sentence-transformers model by name or path, or a callable; loaded once
  per process, timed.
- `index`: cosine search, a numpy matrix up to `MATRIX_LIMIT` vectors, usearch HNSW above.
- `store`: embeddings persisted in the cache's SQLite file (table `embeddings`).
- `stage`: the pipelined stage between the exact cache and the scheduler.
- `audit`: the `report.semantic_hits` table.

Nothing here imports torch, sentence-transformers or usearch at import time.
"""

from __future__ import annotations

from ..errors import ConfigError

#: Threshold used by `semantic=True`, chosen from `benchmarks/semantic` (see README).
DEFAULT_THRESHOLD = 0.96
#: The embedder used when `embedder=None`.
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
INSTALL_HINT = 'pip install "pandas-llm-annotate[semantic]"'


class SemanticUnavailable(ConfigError, ImportError):
    """The semantic cache needs the optional `semantic` extra."""


def missing(what: str, exc: BaseException | None = None) -> SemanticUnavailable:
    """The error to raise when an optional dependency of the semantic cache is absent."""
    why = f" ({exc})" if exc is not None else ""
    return SemanticUnavailable(
        f"semantic=... needs {what}, not installed here{why}. Install the extra: "
        f"{INSTALL_HINT}  (or pass embedder=<callable list[str] -> ndarray> and keep the "
        "index under the documented size)."
    )


def threshold_of(setting: bool | float) -> float | None:
    """The cosine threshold a `semantic=` setting means, or None when it is off."""
    if setting is False or setting is None:
        return None
    if setting is True:
        return DEFAULT_THRESHOLD
    return float(setting)


__all__ = [
    "DEFAULT_EMBEDDER",
    "DEFAULT_THRESHOLD",
    "INSTALL_HINT",
    "SemanticUnavailable",
    "missing",
    "threshold_of",
]
