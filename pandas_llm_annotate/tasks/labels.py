"""The label task: a label set (`labels=`), a free prompt, or the default topic task.

It owns the system prompt, the answer schema sent for structured output, the token
room an answer needs, and the validation that turns raw text into a label (or a
cleaned free-text answer) or a failure.

- `labels={label: description}`: the descriptions go in the prompt's label block
  (`- label: description`); the labels stay the answers.
- `multi_label=True`: every label that applies, as a list in the order of the labels
  (duplicates dropped; `[]` when none applies is an answer). The schema is an array of
  the labels; an answer is read as a JSON list (or `{"labels": [...]}`), else as labels
  separated by commas, semicolons or lines; any item that is not a label fails the
  answer (never dropped silently). The cache keeps the JSON list.
- `examples=`: see `examples.py`.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..protocol.matching import merge_answers, normalize_answer
from ..protocol.prompts import check_labels, system_prompt
from ..protocol.structured import label_schema, pack_schema
from ..text import estimate_prompt_tokens, estimate_tokens
from .base import Verdict
from .examples import example_pairs, examples_block, with_examples
from .fields import Field
from .output import broadcast
from .values import check_value, merge_values

MAX_LABELS = 8  # a multi-label answer gets room for this many labels
_FENCE = re.compile(r"```[\w-]*\s*(.*?)\s*```", re.S)
_ITEMS = re.compile(r"[,;\n]")


def default_max_tokens(prompt: str | None, labels: Sequence[str] | None) -> int:
    """With labels: room for twice the longest label plus a few tokens (at least 16);
    32 for the default topic task; 512 for a free-form prompt. Servers charge
    max_tokens against a TPM limit, so a tight bound is faster there."""
    if labels:
        return max(16, 2 * max(estimate_tokens(label) for label in labels) + 8)
    return 32 if prompt is None else 512


def list_tokens(labels: Sequence[str]) -> int:
    """Answer tokens for a list of labels: room for `MAX_LABELS` of the longest."""
    return min(MAX_LABELS, len(labels)) * (max(map(estimate_tokens, labels)) + 3) + 4


def split_labels(labels: object) -> tuple[object, dict[str, str]]:
    """`labels=` as (the labels, their descriptions): a dict gives both, anything else
    only labels. Descriptions are one line (white space collapsed); None or "" is none."""
    if not isinstance(labels, Mapping):
        return labels, {}
    descriptions: dict[str, str] = {}
    for label, text in labels.items():
        if text is None or (isinstance(text, float) and math.isnan(text)):
            continue
        if not isinstance(text, str):
            raise ConfigError(f"labels[{label!r}]: a description must be a string, got "
                              f"{type(text).__name__}; pass {{label: 'what it means'}}")
        if " ".join(text.split()):
            descriptions[str(label).strip()] = " ".join(text.split())
    if descriptions and (bad := [str(k) for k in labels if ": " in str(k)]):
        raise ConfigError(f"labels {bad} contain ': ', which separates a label from its "
                          "description: rename them")
    return list(labels), descriptions


def label_list(raw: str) -> list[Any] | None:
    """The items of a multi-label answer: a JSON list (or one-key object holding one),
    else the parts between commas, semicolons and lines; None when there is nothing."""
    text = raw.strip()
    if fence := _FENCE.search(text):
        text = fence.group(1).strip()
    for candidate in (text, text[text.find("[") : text.rfind("]") + 1]):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict) and len(data) == 1:
            data = next(iter(data.values()))
        if isinstance(data, list):
            return data
        if isinstance(data, str):
            return [data]
    items = [part.strip().removeprefix("- ").strip() for part in _ITEMS.split(text)]
    items = [item for item in items if item]
    return items or None


@dataclass(frozen=True)
class LabelTask:
    """One run's question with one answer per text. Build it with `LabelTask.build`."""

    system: str  # the system prompt: the static prefix of every request
    labels: tuple[str, ...] | None
    lowercase: bool  # the default task: answers lower-cased, trailing punctuation dropped
    max_tokens: int
    multi: bool = False  # every label that applies, as a list
    pack_answer: str = '"..."'

    @classmethod
    def build(cls, prompt: str | None, labels: object, max_tokens: int | None, *,
              examples: Any = None, multi_label: bool = False,
              column: Hashable | None = None) -> LabelTask:
        """Check the labels and examples (a `ConfigError` says what to pass) and build
        the prompt."""
        labels, descriptions = split_labels(labels)
        names = check_labels(labels)
        if multi_label and names is None:
            raise ConfigError("multi_label=True needs labels=[...]: the labels that may apply")
        if names is not None and len(names) == 1 and not multi_label:
            warnings.warn(
                f"labels has one label ({names[0]!r}): every row that gets an answer gets that "
                "label. Pass at least two labels, or a prompt without labels for free text.",
                UserWarning, stacklevel=5)
        system = system_prompt(prompt, names, descriptions=descriptions, multi=multi_label)
        if multi_label:
            assert names is not None
            task = cls(system, names, False, max_tokens or list_tokens(names) + 12, True, "[...]")
        else:
            task = cls(system, names, prompt is None and names is None,
                       max_tokens or default_max_tokens(prompt, names))
        block = examples_block(example_pairs(examples, column), task.render)
        return replace(task, system=with_examples(system, block))

    @property
    def _field(self) -> Field:
        return Field("labels", "labels", self.labels or ())

    def render(self, answer: Any) -> str:
        """An example's answer as the model should write it (ValueError: not valid)."""
        if self.multi:
            items = list(answer) if isinstance(answer, (list, tuple, set)) else answer
            value, reason = check_value(self._field, True, items)
            if reason is not None:
                raise ValueError(reason)
            return json.dumps(value, ensure_ascii=False)
        checked = self.check(answer) if isinstance(answer, str) else None
        if checked is None or checked.answer is None:
            raise ValueError("not one of the labels" if self.labels else "not a text answer")
        return checked.answer

    def key_parts(self) -> dict[str, Any]:
        return {"labels": self.labels, "multi_label": True} if self.multi else {
            "labels": self.labels}

    def check(self, raw: str) -> Verdict:
        if self.multi:
            items = label_list(raw)
            value, reason = (None, "answer is not a list of labels") if items is None else (
                check_value(self._field, True, items))
            if reason is not None:
                return Verdict(None, reason)
            return Verdict(json.dumps(value, ensure_ascii=False))
        answer = normalize_answer(raw, self.labels, lowercase=self.lowercase)
        if answer is None:
            reason = "answer is not one of the labels" if self.labels else "empty answer"
            return Verdict(None, reason)
        return Verdict(answer)

    def merge(self, parts: Sequence[str]) -> str:
        """One text's answer from its chunks' answers (labels vote; text is joined; lists
        of labels are united, in the order of the labels)."""
        if len(parts) == 1:
            return parts[0]
        if self.multi:
            merged = merge_values(self._field, [json.loads(p) for p in parts])
            return json.dumps(merged, ensure_ascii=False)
        return merge_answers(parts, self.labels)

    def row_answer_tokens(self) -> int:
        if self.multi:
            return list_tokens(self._field.labels)
        if self.labels:
            return max(estimate_tokens(label) for label in self.labels) + 4
        return self.max_tokens

    def expected_answer_tokens(self) -> float:
        """One label: the mean label (as a prompt counts it) and the JSON around it; a
        list of labels: its bound; no labels (free text): half of `max_tokens`."""
        if self.multi:
            return self.row_answer_tokens()
        if self.labels:
            return sum(map(estimate_prompt_tokens, self.labels)) / len(self.labels) + 4
        return self.max_tokens / 2

    def schema(self, rows: int | None) -> dict[str, Any] | None:
        """The JSON schema of an answer: one row (`rows=None`; labels only) or a pack."""
        if self.multi:
            value: dict[str, Any] = {"type": "array",
                                     "items": {"type": "string", "enum": list(self._field.labels)}}
            return pack_schema(rows, value) if rows is not None else {
                "type": "object", "properties": {"labels": value}, "required": ["labels"],
                "additionalProperties": False}
        if rows is None:
            return label_schema(self.labels) if self.labels else None
        value = {"type": "string", "enum": list(self.labels)} if self.labels else {
            "type": "string"}
        return pack_schema(rows, value)

    @property
    def field_names(self) -> tuple[str, ...]:
        return ()

    def present(self, answer: str) -> frozenset[str]:
        return frozenset()

    def output(self, answers: Sequence[str | None], take: np.ndarray,
               like: pd.Series) -> pd.Series:
        if self.multi:  # a list of labels per row
            return broadcast([None if a is None else json.loads(a) for a in answers], take, like)
        return broadcast(answers, take, like)

