"""Deterministic fake embedders for the semantic-cache tests (no model, no torch)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import numpy as np

DIM = 64
_WORD = re.compile(r"[a-z0-9\u4e00-\u9fff]+")


def _slot(word: str) -> int:
    return int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little") % DIM


class BagOfWords:
    """Lower-cased words hashed into DIM slots: case and punctuation vanish, so
    "Cancel my card" and "cancel my card!!" get cosine 1.0. `ignore` words are dropped
    (to make false friends look identical); `calls` records every batch it was given."""

    def __init__(self, ignore: Iterable[str] = (), name: str = "bow") -> None:
        self.ignore = set(ignore)
        self.name = name
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                if word not in self.ignore:
                    out[i, _slot(word)] += 1.0
        out[:, 0] += 1e-3  # no zero vectors
        return out

    @property
    def embedded(self) -> list[str]:
        return [t for batch in self.calls for t in batch]


class Fixed:
    """Vectors given per text: exact cosines for threshold tests."""

    def __init__(self, vectors: dict[str, np.ndarray], name: str = "fixed") -> None:
        self.vectors = vectors
        self.name = name

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


def at_angle(cosine: float, dim: int = 8) -> np.ndarray:
    """A unit vector whose cosine with e0 is `cosine`."""
    v = np.zeros(dim, dtype=np.float64)
    v[0], v[1] = cosine, np.sqrt(max(0.0, 1 - cosine * cosine))
    return v
