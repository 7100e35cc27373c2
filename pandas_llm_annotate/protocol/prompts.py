"""Prompts, label checks and answer parsing for the labelling requests.

Each request is one system message (from `system_prompt`) and one user
message holding the raw text. With labels, the system prompt ends with a
``Labels:`` line followed by one ``- <label>`` line per label (with label
definitions: a ``Labels (label: meaning):`` line, then ``- <label>: <meaning>``);
the server simulator parses that block, so its format is a contract.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

from ..errors import ConfigError
from ..text import CJK_CHARS

__all__ = [
    "DEFAULT_TASK",
    "build_messages",
    "check_labels",
    "merge_answers",
    "normalize_answer",
    "system_prompt",
]

#: Instruction used when neither a prompt nor labels are given.
DEFAULT_TASK = (
    "Give a short topic label for the text: 1 to 3 words, lower case, "
    "no punctuation. Use the same label for texts on the same topic. "
    "Answer with the label and nothing else."
)
_CLASSIFY = "Classify the text into exactly one of the labels below."
_ONE_LABEL = (
    "Answer with exactly one label from the list below, written exactly as shown, and nothing else."
)
_ANSWER_ONLY = "Answer with the answer only, no preamble."
_TAG = "Tag the text with the labels below that apply."
#: The multi-label instruction (the simulator looks for it to answer with a list).
MULTI_LABEL = ("Answer with a JSON list of every label from the list below that applies, "
               "written exactly as shown ([] when none applies), and nothing else.")
DEFINED_LABELS = "Labels (label: meaning):"  # the header of a block with definitions

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


def system_prompt(prompt: str | None, labels: Sequence[str] | None, *,
                  descriptions: Mapping[str, str] | None = None, multi: bool = False) -> str:
    """Build the system message for a prompt and/or a label set.

    - labels, no prompt: a classification instruction, then the
      ``Labels:`` block (``- <label>`` per line) at the end;
    - labels and prompt: the prompt, the instruction to answer with exactly
      one label and nothing else, then the ``Labels:`` block;
    - no labels: the prompt (or `DEFAULT_TASK`) and "Answer with the answer
      only, no preamble."

    `descriptions` (label -> meaning) turns the block into ``Labels (label:
    meaning):`` with ``- <label>: <meaning>`` lines; `multi` asks for a JSON
    list of every label that applies (`MULTI_LABEL`) instead of one label.
    A blank prompt counts as no prompt. Labels are checked with
    `check_labels`. The result depends only on the arguments (it is part
    of the cache key).
    """
    task = prompt.strip() if prompt is not None else ""
    if labels is None:
        return f"{task or DEFAULT_TASK}\n\n{_ANSWER_ONLY}"
    names = check_labels(labels) or ()
    meaning = descriptions or {}
    block = "\n".join(f"- {name}: {meaning[name]}" if meaning.get(name) else f"- {name}"
                      for name in names)
    rule = MULTI_LABEL if multi else _ONE_LABEL
    head = f"{task}\n\n{rule}" if task else f"{_TAG if multi else _CLASSIFY}\n{rule}"
    return f"{head}\n\n{DEFINED_LABELS if meaning else 'Labels:'}\n{block}"


def build_messages(system: str, text: str) -> list[dict[str, str]]:
    """Chat messages for one request: the system prompt, then the text."""
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": text},
    ]


def check_labels(labels: object) -> tuple[str, ...] | None:
    """Validate and normalise the ``labels=`` argument.

    ``None`` gives ``None``. Any non-string iterable is accepted (list,
    tuple, ``pd.Index``, NumPy array, dict keys...); sets are sorted so
    the order is stable. Each label is converted with ``str()`` and
    stripped; the order is kept.

    Raises:
        ConfigError (a ValueError): for a single string, a non-iterable, an
            empty collection, a missing, blank or multi-line label, duplicates,
            or labels that cannot be told apart once case, spaces, ``_``/``-``,
            surrounding quotes and trailing punctuation are ignored.
    """
    if labels is None:
        return None
    if isinstance(labels, (str, bytes)):
        raise ConfigError(
            f"labels must be a list of strings, not one string: use "
            f"labels=[{labels!r}] for a single label, or a list such as "
            f"labels=['positive', 'negative']"
        )
    if not isinstance(labels, Iterable):
        raise ConfigError(f"labels must be a list of strings, got {type(labels).__name__}")
    items = list(labels)
    if isinstance(labels, (set, frozenset)):
        items.sort(key=lambda item: str(item).strip())
    if not items:
        raise ConfigError(
            "labels is empty: pass at least one label, e.g. "
            "labels=['positive', 'negative'], or labels=None for free-text answers"
        )
    names: list[str] = []
    for i, item in enumerate(items):
        if item is None or (isinstance(item, float) and item != item):
            raise ConfigError(f"labels[{i}] is missing ({item!r}): give every label a name")
        name = str(item).strip()
        if not name:
            raise ConfigError(f"labels[{i}] is blank: remove it or give it a name")
        if len(name.splitlines()) > 1:
            raise ConfigError(f"labels[{i}] = {name!r} spans several lines: use one line")
        names.append(name)
    dups = [name for name, n in Counter(names).items() if n > 1]
    if dups:
        raise ConfigError(f"duplicate labels {dups}: list each label once")
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_key(name), []).append(name)
    if "" in groups:
        raise ConfigError(
            f"labels {groups['']} are only punctuation or quotes: use labels with letters or digits"
        )
    clashes = [group for group in groups.values() if len(group) > 1]
    if clashes:
        listed = "; ".join(" vs ".join(map(repr, group)) for group in clashes)
        raise ConfigError(
            f"labels that differ only in case, spaces, '_'/'-', quotes or "
            f"trailing punctuation cannot be told apart in answers: {listed}. "
            f"Rename or merge them"
        )
    return tuple(names)


def _unwrap_json(text: str) -> str:
    """Return the value of a one-key JSON object with a string value, else ``text``."""
    if not (text.startswith("{") and text.endswith("}")):
        return text
    try:
        obj = json.loads(text)
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


def _key(text: str) -> str:
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
        by_key.setdefault(_key(label), label)
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
    if raw.strip() in index.exact:
        return raw.strip()
    key = _key(raw)
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
