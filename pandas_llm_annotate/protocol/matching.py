"""Reading a label (or a free-text answer) out of what a model said, and merging the
answers of one text's chunks.

A model wraps its answer in many ways (code fences, a one-key JSON object, bold, quotes,
an ``Answer:`` prefix, trailing punctuation); labels are matched ignoring those, case and
``_``/``-``/spaces (`label_key`), then as the single label that occurs as a phrase.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import orjson

from ..text import CJK_CHARS

__all__ = ["label_key", "merge_answers", "normalize_answer"]

_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
_TRAILING = ".,;:!?\u3002\uff0c\uff1b\uff1a\uff01\uff1f"
_PREFIX = re.compile(r"(?:final\s+answer|answer|label|category)\s*[:\uff1a]\s*", re.I)
_BOLD = re.compile(r"\*\*(.*)\*\*", re.S)
_FENCE = re.compile(r"```[\w-]*\s*(.*?)\s*```", re.S)
_SPACES = re.compile(r"\s+")
_SEPARATORS = re.compile(r"[\s_\-]+")
# Word characters other than CJK: a label must not touch them to count as
# a whole word, while CJK labels may sit inside a run of CJK text.
_LATIN_WORD = f"[^\\W{CJK_CHARS}]"
_LATIN_CHAR = re.compile(_LATIN_WORD)


def _unwrap_json(text: str) -> str:
    """Return the value of a one-key JSON object with a string value, else ``text``."""
    if not (text.startswith("{") and text.endswith("}")):
        return text
    try:
        obj = orjson.loads(text)
    except ValueError:
        return text
    if isinstance(obj, dict) and len(obj) == 1:
        (value,) = obj.values()
        if isinstance(value, str):
            return value
    return text


def _clean(raw: str, strip_punct: bool) -> str:
    """Strip wrappers a model adds around an answer, until none is left.

    Removes whitespace, code fences, a one-key JSON object, ``**bold**``,
    surrounding quotes/backticks, a ``Label:``/``Answer:`` prefix and,
    if ``strip_punct``, trailing punctuation.
    """
    text = raw
    for _ in range(10):  # each pass removes a layer; nesting is shallow
        before = text
        text = text.strip()
        if fence := _FENCE.fullmatch(text):
            text = fence.group(1)
        text = _unwrap_json(text)
        if bold := _BOLD.fullmatch(text):
            text = bold.group(1)
        text = text.strip().strip(_QUOTES).strip()
        if prefix := _PREFIX.match(text):
            text = text[prefix.end() :]
        if strip_punct:
            text = text.rstrip(_TRAILING).rstrip()
        if text == before:
            break
    return text


def _fold(text: str) -> str:
    """Case-fold and treat runs of spaces, ``_`` and ``-`` as one space."""
    return _SEPARATORS.sub(" ", text.casefold()).strip()


def label_key(text: str) -> str:
    """Return the matching key of a label or an answer."""
    return _fold(_clean(text, strip_punct=True))


class _Index(NamedTuple):
    """Lookup tables for one label set."""

    exact: frozenset[str]
    by_key: dict[str, str]
    lengths: tuple[int, ...]  # the distinct lengths of the keys


@lru_cache(maxsize=64)
def _index(labels: tuple[str, ...]) -> _Index:
    """Dicts only: one regex per label (the way before) cost 33 s of CPU on the event
    loop for 10,000 labels."""
    by_key: dict[str, str] = {}
    for label in labels:
        by_key.setdefault(label_key(label), label)
    by_key.pop("", None)
    lengths = tuple(sorted({len(key) for key in by_key}))
    return _Index(frozenset(labels), by_key, lengths)


def _find_one(key: str, index: _Index) -> str | None:
    """Return the single label occurring as a phrase in ``key``, else None.

    A phrase does not touch a Latin word character on either side (CJK labels may
    sit inside a run of CJK text); each label's occurrences are read left to right
    without overlap. A label found only inside a longer found label (``card``
    inside ``card arrival``) does not count. One dict lookup per start position
    and key length: no regex per label.
    """
    latin = {m.start() for m in _LATIN_CHAR.finditer(key)}
    found: dict[str, list[tuple[int, int]]] = {}
    for start in range(len(key)):
        if start - 1 in latin:
            continue
        for length in index.lengths:
            end = start + length
            if end > len(key):
                break
            label = index.by_key.get(key[start:end]) if end not in latin else None
            if label is None:
                continue
            spans = found.setdefault(label, [])
            if not spans or start >= spans[-1][1]:
                spans.append((start, end))
    if len(found) > 1:
        others = [(span, label) for label, spans in found.items() for span in spans]
        found = {
            label: spans
            for label, spans in found.items()
            if any(
                not any(o != label and a <= s and e <= b for (a, b), o in others) for s, e in spans
            )
        }
    return next(iter(found)) if len(found) == 1 else None


def normalize_answer(
    raw: str, labels: Sequence[str] | None, *, lowercase: bool = False
) -> str | None:
    """Turn a raw model answer into a label or a cleaned free-text answer.

    With labels, returns the canonical label or ``None``. The answer is
    stripped of whitespace, code fences, a one-key JSON object such as
    ``{"label": "x"}``, ``**bold**``, surrounding quotes/backticks, a
    leading ``Label:``/``Answer:`` and trailing ``.,;:!?。``; then matched
    ignoring case and treating ``_``, ``-`` and spaces alike (``Card
    Arrival`` gives ``card_arrival``). Failing that, if exactly one label
    occurs as a whole word or phrase in the answer, that label is
    returned; if none or several do, ``None``.

    Without labels, returns the answer with the same wrappers (but not
    punctuation) removed and whitespace runs collapsed to one space; with
    ``lowercase=True`` also lower-cased and stripped of trailing
    punctuation. An empty result gives ``None``.
    """
    if labels is None:
        text = _SPACES.sub(" ", _clean(raw, strip_punct=lowercase))
        if lowercase:
            text = text.lower()
        return text or None
    index = _index(tuple(labels))
    text = raw.strip()
    if text in index.exact:
        return text
    if (value := _unwrap_json(text)) in index.exact:  # a structured answer: {"label": ...}
        return value
    key = label_key(raw)
    if not key:
        return None
    label = index.by_key.get(key)
    return label if label is not None else _find_one(key, index)


def merge_answers(answers: Sequence[str], labels: Sequence[str] | None) -> str:
    """Merge the answers for the chunks of one long text.

    With labels: majority vote; a tie goes to the tied answer given by the
    earliest chunk. Without labels: the distinct non-empty answers in
    chunk order, joined with ``"; "`` (exact duplicates dropped; the
    comparison is case-sensitive).

    Raises:
        ValueError: if ``answers`` is empty.
    """
    if not answers:
        raise ValueError("merge_answers needs at least one answer")
    if labels is not None:
        counts = Counter(answers)
        top = max(counts.values())
        return next(answer for answer in answers if counts[answer] == top)
    return "; ".join(dict.fromkeys(answer for answer in answers if answer))
