"""A task says what is asked and how an answer is checked.

Today: a label set (`labels=`), a free prompt, or the default topic task. The task
owns the system prompt, the answer schema sent for structured output, the token
room an answer needs, and the validation that turns raw text into a value or a
failure. Dedupe, cache, chunking, packing, limiter and report do not care which
task runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol.prompts import check_labels, merge_answers, normalize_answer, system_prompt
from ..protocol.structured import label_schema, pack_schema
from ..text import estimate_tokens


def default_max_tokens(prompt: str | None, labels: Sequence[str] | None) -> int:
    """With labels: room for twice the longest label plus a few tokens (at least 16);
    32 for the default topic task; 512 for a free-form prompt. Servers charge
    max_tokens against a TPM limit, so a tight bound is faster there."""
    if labels:
        return max(16, 2 * max(estimate_tokens(label) for label in labels) + 8)
    return 32 if prompt is None else 512


@dataclass(frozen=True)
class Task:
    """One run's question. Build it with `Task.build`."""

    system: str  # the system prompt: the static prefix of every request
    labels: tuple[str, ...] | None
    lowercase: bool  # the default task: answers lower-cased, trailing punctuation dropped
    max_tokens: int

    @classmethod
    def build(cls, prompt: str | None, labels: object, max_tokens: int | None) -> Task:
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

    def valid(self, raw: str) -> str | None:
        """The answer `raw` stands for, or None when it is not a valid answer."""
        return normalize_answer(raw, self.labels, lowercase=self.lowercase)

    @property
    def invalid_reason(self) -> str:
        return "answer is not one of the labels" if self.labels else "empty answer"

    def merge(self, parts: Sequence[str]) -> str:
        """One text's answer from its chunks' answers (labels vote; text is joined)."""
        return parts[0] if len(parts) == 1 else merge_answers(parts, self.labels)

    def row_answer_tokens(self) -> int:
        """Answer tokens one row needs inside a packed JSON answer."""
        if self.labels:
            return max(estimate_tokens(label) for label in self.labels) + 4
        return self.max_tokens

    def schema(self, rows: int | None) -> dict[str, Any] | None:
        """The JSON schema of an answer: one row (`rows=None`; labels only) or a pack."""
        if rows is None:
            return label_schema(self.labels) if self.labels else None
        return pack_schema(rows, self.labels)
