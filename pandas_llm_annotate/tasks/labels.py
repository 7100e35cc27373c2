"""The label task: a label set (`labels=`), a free prompt, or the default topic task.

It owns the system prompt, the answer schema sent for structured output, the token
room an answer needs, and the validation that turns raw text into a label (or a
cleaned free-text answer) or a failure.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..protocol.prompts import check_labels, merge_answers, normalize_answer, system_prompt
from ..protocol.structured import label_schema, pack_schema
from ..text import estimate_tokens
from .base import Verdict
from .output import broadcast


def default_max_tokens(prompt: str | None, labels: Sequence[str] | None) -> int:
    """With labels: room for twice the longest label plus a few tokens (at least 16);
    32 for the default topic task; 512 for a free-form prompt. Servers charge
    max_tokens against a TPM limit, so a tight bound is faster there."""
    if labels:
        return max(16, 2 * max(estimate_tokens(label) for label in labels) + 8)
    return 32 if prompt is None else 512


@dataclass(frozen=True)
class LabelTask:
    """One run's question with one answer per text. Build it with `LabelTask.build`."""

    system: str  # the system prompt: the static prefix of every request
    labels: tuple[str, ...] | None
    lowercase: bool  # the default task: answers lower-cased, trailing punctuation dropped
    max_tokens: int
    pack_answer: str = '"..."'

    @classmethod
    def build(cls, prompt: str | None, labels: object, max_tokens: int | None) -> LabelTask:
        """Check the labels (a `ConfigError` says what to pass) and build the prompt."""
        names = check_labels(labels)
        if names is not None and len(names) == 1:
            warnings.warn(
                f"labels has one label ({names[0]!r}): every row that gets an answer gets that "
                "label. Pass at least two labels, or a prompt without labels for free text.",
                UserWarning, stacklevel=5)
        return cls(
            system=system_prompt(prompt, names),
            labels=names,
            lowercase=prompt is None and names is None,
            max_tokens=max_tokens or default_max_tokens(prompt, names),
        )

    def key_parts(self) -> dict[str, Any]:
        return {"labels": self.labels}

    def check(self, raw: str) -> Verdict:
        answer = normalize_answer(raw, self.labels, lowercase=self.lowercase)
        if answer is None:
            reason = "answer is not one of the labels" if self.labels else "empty answer"
            return Verdict(None, reason)
        return Verdict(answer)

    def merge(self, parts: Sequence[str]) -> str:
        """One text's answer from its chunks' answers (labels vote; text is joined)."""
        return parts[0] if len(parts) == 1 else merge_answers(parts, self.labels)

    def row_answer_tokens(self) -> int:
        if self.labels:
            return max(estimate_tokens(label) for label in self.labels) + 4
        return self.max_tokens

    def schema(self, rows: int | None) -> dict[str, Any] | None:
        """The JSON schema of an answer: one row (`rows=None`; labels only) or a pack."""
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
        return broadcast(answers, take, like)

