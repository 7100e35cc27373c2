"""The simulator's model of a good answer: the best label for a text (word overlap,
ties broken by a stable hash), or a short phrase from it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache

from ..text import CJK_LETTER

_CJK = CJK_LETTER
_LATIN_WORD = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]+")
_WORD = re.compile(r"[^\W_]+")
_LABEL_SPLIT = re.compile(r"[\s_\-]+")
MIN_WORD = 3


def text_words(text: str) -> set[str]:
    """The words of a text (lower case, at least `MIN_WORD` letters)."""
    return {w for w in _WORD.findall(text.lower()) if len(w) >= MIN_WORD}


def stable_index(text: str, n: int) -> int:
    """Index in ``range(n)`` from a hash that is stable across processes."""
    digest = hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


@lru_cache(maxsize=4096)
def label_words(label: str) -> frozenset[str]:
    return frozenset(w for w in _LABEL_SPLIT.split(label.lower()) if len(w) >= MIN_WORD)


def answer_text(text: str, labels: tuple[str, ...] = (), key: str | None = None,
                meanings: Mapping[str, str] | None = None) -> str:
    """Answer for one text: the best label, or a short phrase from the text.

    A label scores the words it shares with the text, counting the words of its meaning
    (``meanings``, from label definitions) too. ``key`` (default ``text``) seeds the
    tie-break hash; callers pass the raw text when ``text`` had a label block stripped.
    """
    if labels:
        words = text_words(text)
        meant = meanings or {}
        scores = [len(words & (label_words(label) | text_words(meant.get(label, ""))))
                  for label in labels]
        best = max(scores)
        tied = [label for label, s in zip(labels, scores, strict=True) if s == best]
        if len(tied) == 1:
            return tied[0]
        return tied[stable_index(text if key is None else key, len(tied))]
    return phrase(text)


def phrase(text: str) -> str:
    """Up to two longest Latin words (in text order), else 2-4 CJK chars."""
    seen: dict[str, int] = {}  # word -> first position
    for pos, word in enumerate(_LATIN_WORD.findall(text)):
        seen.setdefault(word.lower(), pos)
    if seen:
        # Longest first, earlier first on ties; then restore text order.
        top = sorted(seen, key=lambda w: (-len(w), seen[w]))[:2]
        return " ".join(sorted(top, key=seen.__getitem__))
    cjk = _CJK.findall(text)
    if cjk:
        return "".join(cjk[:4])
    return "misc"
