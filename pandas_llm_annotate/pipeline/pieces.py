"""The pieces of a run: each distinct text, chunked when long; a piece is asked once,
whichever texts share it. Tracks which texts (and so rows) are complete."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .cache import text_key
from .chunking import split_text


class Pieces:
    """`keys[tid]`: the piece keys of text `tid`, in order; `text[key]`: a piece's text;
    `users[key]`: the texts that contain it."""

    def __init__(self, texts: Sequence[str], namespace: str, max_chunk_tokens: int,
                 rows_per_text: np.ndarray) -> None:
        self.keys: list[list[str]] = []
        self.text: dict[str, str] = {}
        self.users: dict[str, list[int]] = {}
        for tid, whole in enumerate(texts):
            chunks = [whole] if len(whole) <= max_chunk_tokens else split_text(
                whole, max_chunk_tokens)
            keys = []
            for chunk in chunks:
                key = text_key(namespace, chunk)
                keys.append(key)
                self.text[key] = chunk
                self.users.setdefault(key, []).append(tid)
            self.keys.append(keys)
        self.rows_per_text = rows_per_text
        self._pending = np.array([len(k) for k in self.keys], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.text)

    def settle(self, key: str) -> int:
        """The piece `key` is settled (answered or failed for good): the rows whose
        texts have no piece left to wait for (none for a key of another run's texts)."""
        rows = 0
        for tid in self.users.get(key, ()):
            self._pending[tid] -= 1
            if self._pending[tid] == 0:
                rows += int(self.rows_per_text[tid])
        return rows

    def rows_answered(self, answers: Mapping[str, str]) -> int:
        """Rows whose every piece has an answer."""
        return sum(int(self.rows_per_text[tid]) for tid, keys in enumerate(self.keys)
                   if all(k in answers for k in keys))

    def text_answers(self, answers: Mapping[str, str],
                     merge: Callable[[Sequence[str]], str]) -> list[str | None]:
        """One answer per text (its pieces' answers merged), None when a piece has none."""
        out: list[str | None] = []
        for keys in self.keys:
            if all(k in answers for k in keys):
                out.append(merge([answers[k] for k in keys]))
            else:
                out.append(None)
        return out
