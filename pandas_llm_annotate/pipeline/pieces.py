"""The pieces of a run: each distinct text, chunked when long; a piece is asked once,
whichever texts share it. Tracks which texts (and so rows) are complete.

Kept as flat arrays, not a list per text, so a million texts cost arrays, not a million
small lists: `flat` holds every text's piece keys in order, text `tid`'s keys are
`flat[start[tid]:start[tid + 1]]`, and `piece[j]` numbers the key `flat[j]` (pieces
are numbered in the order of `text`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .cache import text_keys
from .chunking import split_text


class Pieces:
    """`keys[tid]`: the piece keys of text `tid`, in order; `text[key]`: a piece's text;
    `users[key]`: the texts that contain it."""

    def __init__(self, texts: Sequence[str], namespace: str, max_chunk_tokens: int,
                 rows_per_text: np.ndarray) -> None:
        long = {tid: split_text(t, max_chunk_tokens) for tid, t in enumerate(texts)
                if len(t) > max_chunk_tokens}
        if long:
            chunks: list[str] = []
            for tid, whole in enumerate(texts):
                chunks.extend(long.get(tid, (whole,)))
            counts = np.ones(len(texts), dtype=np.int64)
            counts[list(long)] = [len(c) for c in long.values()]
        else:
            chunks, counts = list(texts), np.ones(len(texts), dtype=np.int64)
        self.flat = text_keys(namespace, chunks)
        self.start = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.start[1:])
        self.owner = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
        # A key's first place wins (equal keys are equal chunks).
        self.text: dict[str, str] = dict(zip(self.flat, chunks, strict=True))
        if len(self.text) == len(self.flat):  # no piece shared: piece j is flat[j]
            self.piece = np.arange(len(self.flat), dtype=np.int64)
            order: Sequence[str] | np.ndarray = self.flat
        else:  # a chunk is another text, or a chunk of one: number the keys
            piece, order = pd.factorize(np.asarray(self.flat, dtype=object))
            self.piece = piece.astype(np.int64)
        self._number = pd.Index(order)  # key → piece number, looked up in C
        # The texts of each piece, grouped: piece p's users are
        # by_piece[ustart[p]:ustart[p + 1]] (a text with a chunk twice is there twice).
        grouped = np.argsort(self.piece, kind="stable")
        self._by_piece = self.owner[grouped]
        self._ustart = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.piece, minlength=len(order)), out=self._ustart[1:])
        self.rows_per_text = rows_per_text
        self._pending = counts.copy()

    def __len__(self) -> int:
        return len(self.text)

    @property
    def keys(self) -> list[list[str]]:
        """Each text's piece keys (built on each call: for small runs and tests)."""
        return [self.keys_of(tid) for tid in range(len(self.start) - 1)]

    def keys_of(self, tid: int) -> list[str]:
        """Text `tid`'s piece keys, in order."""
        return self.flat[self.start[tid]:self.start[tid + 1]]

    def any_per_text(self, flags: np.ndarray) -> np.ndarray:
        """For a flag per piece (by number), whether each text has a flagged piece."""
        per_key = flags[self.piece].astype(np.int64)
        if not len(per_key):
            return np.zeros(len(self.start) - 1, dtype=bool)
        return np.add.reduceat(per_key, self.start[:-1]) > 0

    @property
    def users(self) -> dict[str, list[int]]:
        """Each piece key's texts (built on each call)."""
        return {key: self._by_piece[self._ustart[p]:self._ustart[p + 1]].tolist()
                for p, key in enumerate(self.text)}

    def users_of(self, key: str) -> list[int]:
        """The texts that contain the piece `key` (none for another run's key)."""
        if key not in self.text:
            return []
        p = self._loc(key)
        users: list[int] = self._by_piece[self._ustart[p]:self._ustart[p + 1]].tolist()
        return users

    def numbers(self, keys: Iterable[str]) -> np.ndarray:
        """The piece number of each key, -1 for a key that is not one of this run's."""
        wanted = pd.Index(np.asarray(list(keys), dtype=object))
        return np.asarray(self._number.get_indexer(wanted), dtype=np.int64)

    def _loc(self, key: str) -> int:
        loc = self._number.get_loc(key)  # an int: the keys are distinct
        assert isinstance(loc, int)
        return loc

    def settle(self, key: str) -> int:
        """The piece `key` is settled (answered or failed for good): the rows whose
        texts have no piece left to wait for (none for a key of another run's texts)."""
        if key not in self.text:
            return 0
        p = self._loc(key)
        a, b = int(self._ustart[p]), int(self._ustart[p + 1])
        if b - a == 1:  # the common case: one text has this piece
            tid = int(self._by_piece[a])
            self._pending[tid] -= 1
            return int(self.rows_per_text[tid]) if self._pending[tid] == 0 else 0
        return self._settle_numbers(np.array([p], dtype=np.int64))

    def settle_many(self, keys: Iterable[str]) -> int:
        """`settle` of each of `keys` (distinct), at once: the rows completed."""
        found = self.numbers(keys)
        return self._settle_numbers(found[found >= 0])

    def _settle_numbers(self, numbers: np.ndarray) -> int:
        lo, hi = self._ustart[numbers], self._ustart[numbers + 1]
        sizes = hi - lo
        # Every user position of these pieces: lo repeated, plus 0, 1, ... within each.
        at = np.repeat(lo - np.cumsum(sizes) + sizes, sizes) + np.arange(int(sizes.sum()))
        drop = np.bincount(self._by_piece[at], minlength=len(self._pending))
        hit = np.flatnonzero(drop)
        before = self._pending[hit]
        self._pending[hit] = before - drop[hit]
        done = hit[(before > 0) & (before - drop[hit] <= 0)]  # reached 0 in this call
        return int(self.rows_per_text[done].sum())

    def _complete(self, answers: Mapping[str, str]) -> tuple[np.ndarray, list[str | None]]:
        """Whether each text has every piece answered, and each piece's answer."""
        got = [answers.get(k) for k in self.text]
        missing = np.fromiter((a is None for a in got), dtype=bool, count=len(got))
        return ~self.any_per_text(missing), got

    def rows_answered(self, answers: Mapping[str, str]) -> int:
        """Rows whose every piece has an answer."""
        whole, _ = self._complete(answers)
        return int(self.rows_per_text[whole].sum())

    def text_answers(self, answers: Mapping[str, str],
                     merge: Callable[[Sequence[str]], str]) -> list[str | None]:
        """One answer per text (its pieces' answers merged), None when a piece has none;
        a text of one piece takes its answer as it is (`merge` of one part is that part)."""
        whole, got = self._complete(answers)
        first = self.piece[self.start[:-1]].tolist()
        out: list[str | None] = [got[p] for p in first]
        several = np.flatnonzero((np.diff(self.start) > 1) & whole)
        for tid in several.tolist():
            a, b = int(self.start[tid]), int(self.start[tid + 1])
            out[tid] = merge([got[p] or "" for p in self.piece[a:b].tolist()])  # all there
        for tid in np.flatnonzero(~whole).tolist():
            out[tid] = None
        return out
