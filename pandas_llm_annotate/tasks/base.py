"""What every task offers the pipeline: the one interface dedupe, cache, chunking,
packing, limiter and report talk to, whichever task runs.

A task says what is asked and how an answer is checked. Answers travel through the
pipeline (and the cache) as strings; only the task knows what they mean:

- `system`: the static prefix of every request (instructions, label definitions,
  examples). It is hashed into the cache namespace, with `key_parts()`.
- `check(raw)`: a model's raw answer becomes a `Verdict`: the canonical answer string
  (what the cache keeps), or why there is none, and the fields that were wrong.
- `merge(parts)`: one text's answer from its chunks' answers.
- `schema(rows)`: the JSON schema of one answer (`rows=None`) or of a pack of `rows`
  answers keyed "1".."rows", for structured output; None: no schema (free text).
- `pack_answer`: how one answer looks in the pack instructions' example.
- `field_names`, `present(answer)`: a task with fields (`extract`) names them, and
  says which have a value in an answer; the failures table lists the others.
- `output(answers, take, like)`: the user's result from one answer per distinct text
  (`take[i]`: the text of row i, or `len(answers)` for a row without one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd


class FieldProblem(NamedTuple):
    """A field of an answer that could not be used: its name, the raw value as JSON text
    (None: the field was missing) and the reason."""

    field: str
    raw: str | None
    reason: str


@dataclass(frozen=True)
class Verdict:
    """What a raw answer stands for.

    `answer` None: nothing usable (`reason` says why). Otherwise the canonical answer;
    `problems` lists the fields that were wrong (they are null in `answer`). Only a
    complete answer (no problems) is cached; a pack asks rows with problems again alone.
    """

    answer: str | None
    reason: str = ""
    problems: tuple[FieldProblem, ...] = ()

    @property
    def complete(self) -> bool:
        return self.answer is not None and not self.problems


class Task(Protocol):
    """One run's question; see the module doc."""

    @property
    def system(self) -> str: ...

    @property
    def max_tokens(self) -> int:
        """Answer tokens of one unpacked request."""
        ...

    @property
    def pack_answer(self) -> str:
        """One answer in the pack instructions' example, e.g. '"..."'."""
        ...

    def key_parts(self) -> dict[str, Any]:
        """What besides `system` makes answers differ (hashed into the cache namespace)."""
        ...

    def check(self, raw: str) -> Verdict: ...

    def merge(self, parts: Sequence[str]) -> str: ...

    def row_answer_tokens(self) -> int:
        """Answer tokens one row needs inside a packed JSON answer."""
        ...

    def expected_answer_tokens(self) -> float:
        """Answer tokens one row is expected to use: the estimate's guess before any
        `usage` calibrates it (`row_answer_tokens` is the bound)."""
        ...

    def schema(self, rows: int | None) -> dict[str, Any] | None: ...

    @property
    def field_names(self) -> tuple[str, ...]:
        """The fields of an answer (a field task); empty for one value per text."""
        ...

    def present(self, answer: str) -> frozenset[str]:
        """The fields that have a value in `answer` (field tasks; others: empty)."""
        ...

    def output(self, answers: Sequence[str | None], take: np.ndarray,
               like: pd.Series) -> pd.Series | pd.DataFrame: ...
