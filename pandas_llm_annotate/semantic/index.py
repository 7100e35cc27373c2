"""Cosine search over unit vectors, batched: never a Python loop over the entries.

Up to `MATRIX_LIMIT` vectors the index is a numpy matrix and a search is one matrix
product (exact; 100,000 × 384 float32 is 150 MB and a batch of 64 queries takes a few
ms). Past that it moves to a usearch HNSW graph (approximate recall, exact similarities
for what it finds; needs the `semantic` extra). A missed neighbour only costs a request,
never a wrong answer: every candidate is still checked against the threshold and guards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import missing

MATRIX_LIMIT = 100_000
EXPANSION_SEARCH = 128  # HNSW breadth of a search: recall against ~2x the time of 64


def usearch_available() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


class VectorIndex:
    """Append-only cosine index; an entry's id is its position in insertion order."""

    def __init__(self, dim: int, matrix_limit: int = MATRIX_LIMIT) -> None:
        self.dim = dim
        self.matrix_limit = matrix_limit
        self._matrix = np.empty((0, dim), dtype=np.float32)
        self._size = 0
        self._ann: Any = None

    def __len__(self) -> int:
        return self._size

    @property
    def backend(self) -> str:
        return "matrix" if self._ann is None else "usearch"

    def add(self, vectors: np.ndarray) -> None:
        """Append unit vectors (rows); their ids continue from `len(self)`."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if not len(vectors):
            return
        start = self._size
        if self._ann is None and start + len(vectors) > self.matrix_limit:
            self._to_ann()
        if self._ann is not None:
            ids = np.arange(start, start + len(vectors), dtype=np.uint64)
            self._ann.add(ids, vectors)
        else:
            if start + len(vectors) > len(self._matrix):
                grown = max(start + len(vectors), 2 * len(self._matrix), 256)
                matrix = np.empty((grown, self.dim), dtype=np.float32)
                matrix[:start] = self._matrix[:start]
                self._matrix = matrix
            self._matrix[start : start + len(vectors)] = vectors
        self._size += len(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` (similarities, ids) per query row, best first; id -1 where there is none."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        n, k = len(queries), max(1, k)
        sims = np.full((n, k), -np.inf, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        if not self._size or not n:
            return sims, ids
        if self._ann is not None:
            return self._search_ann(queries, k, sims, ids)
        scores = queries @ self._matrix[: self._size].T
        take = min(k, self._size)
        if take < self._size:
            top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        else:
            top = np.broadcast_to(np.arange(self._size), (n, self._size))
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        sims[:, :take] = np.take_along_axis(top_scores, order, axis=1)
        ids[:, :take] = np.take_along_axis(top, order, axis=1)
        return sims, ids

    def _search_ann(self, queries: np.ndarray, k: int, sims: np.ndarray,
                    ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = self._ann.search(queries, k)
        keys = np.asarray(found.keys, dtype=np.int64).reshape(len(queries), -1)
        dist = np.asarray(found.distances, dtype=np.float32).reshape(len(queries), -1)
        counts = np.asarray(found.counts).reshape(-1)
        width = min(k, keys.shape[1])
        valid = np.arange(width)[None, :] < counts[:, None]
        ids[:, :width] = np.where(valid, keys[:, :width], -1)
        dist = np.nan_to_num(dist[:, :width], nan=2.0, posinf=2.0, neginf=2.0)
        sims[:, :width] = np.where(valid, 1.0 - dist, -np.inf)
        return sims, ids

    def save(self, path: Path) -> None:
        """Write the HNSW graph (usearch backend only), so the next session loads it
        instead of building it again (building runs at ~1,000 texts/s on 2 cores)."""
        if self._ann is None:
            raise ValueError("only a usearch index is saved; a matrix is rebuilt from the store")
        self._ann.save(str(path))

    @classmethod
    def restore(cls, path: Path, dim: int, matrix_limit: int = MATRIX_LIMIT) -> VectorIndex:
        """A usearch index saved by `save`."""
        try:
            from usearch.index import Index
        except ImportError as exc:
            raise missing("usearch (a saved index)", exc) from None
        ann: Any = Index.restore(str(path))
        if ann is None or ann.ndim != dim:
            raise ValueError(f"{path} is not a usearch index of {dim} dimensions")
        ann.expansion_search = EXPANSION_SEARCH  # not kept in the file
        index = cls(dim, matrix_limit)
        index._ann = ann
        index._size = len(ann)
        return index

    def _to_ann(self) -> None:
        try:
            from usearch.index import Index
        except ImportError as exc:
            raise missing(f"usearch (an index of more than {self.matrix_limit:,} texts)",
                          exc) from None
        ann = Index(ndim=self.dim, metric="cos", dtype="f32", connectivity=16,
                    expansion_add=128, expansion_search=EXPANSION_SEARCH)
        if self._size:
            ann.add(np.arange(self._size, dtype=np.uint64), self._matrix[: self._size])
        self._ann = ann
        self._matrix = np.empty((0, self.dim), dtype=np.float32)
