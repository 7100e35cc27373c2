"""Prompts and label checks for the labelling requests (reading a label back out of an
answer: `matching`).

Each request is one system message (from `system_prompt`) and one user
message holding the raw text. With labels, the system prompt ends with a
``Labels:`` line followed by one ``- <label>`` line per label (with label
definitions: a ``Labels (label: meaning):`` line, then ``- <label>: <meaning>``);
the server simulator parses that block, so its format is a contract.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from ..errors import ConfigError
from .matching import label_key

__all__ = [
    "DEFAULT_TASK",
    "build_messages",
    "check_labels",
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
        groups.setdefault(label_key(name), []).append(name)
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
