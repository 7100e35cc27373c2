"""Few-shot examples: `examples=` read as (text, answer) pairs, each answer checked by
the task up front, then written at the end of the system prompt (the static prefix:
provider prompt caching reuses it, and the cache namespace hashes it).

- A DataFrame: the input column is the one named like the column being labelled when
  there is one, else the first column. `annotate`: one more column, the answer.
  `extract`: one column per field (a missing optional field counts as null).
- A list of `(text, answer)` pairs: the answer is a label, a list of labels
  (`multi_label=True`), a free-text answer, or for `extract` a dict of field values
  (or a Pydantic model instance).

The block, after the instructions and the labels or fields:

    Examples:

    Text: <text>
    Answer: <the answer as the model should write it>
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError

Render = Callable[[Any], str]  # an answer as the model should write it; ValueError if wrong


def example_pairs(examples: Any, column: Hashable | None,
                  fields: Sequence[str] | None = None) -> list[tuple[str, Any, str]]:
    """`examples` as (text, answer, where) triples; `where` names the example in errors.
    `fields`: the field names of an `extract` (a DataFrame's answer is a dict of them)."""
    if examples is None:
        return []
    if isinstance(examples, pd.DataFrame):
        return _from_frame(examples, column, fields)
    if isinstance(examples, (str, bytes, Mapping)) or not isinstance(examples, Sequence):
        raise ConfigError(
            "examples must be a DataFrame (the text column and the answer column(s)) or a "
            f"list of (text, answer) pairs, got {type(examples).__name__}")
    out = []
    for i, pair in enumerate(examples):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ConfigError(f"examples[{i}] must be a (text, answer) pair, got {pair!r:.80}")
        out.append((pair[0], pair[1], f"examples[{i}]"))
    return out


def _from_frame(frame: pd.DataFrame, column: Hashable | None,
                fields: Sequence[str] | None) -> list[tuple[str, Any, str]]:
    if frame.columns.has_duplicates or frame.shape[1] < 2:
        raise ConfigError("examples as a DataFrame needs a text column and answer column(s), "
                          f"each named once; got columns {list(frame.columns)}")
    text = column if column is not None and column in frame.columns else frame.columns[0]
    rest = [c for c in frame.columns if c != text]
    if fields is None and len(rest) != 1:
        raise ConfigError(f"examples has columns {list(frame.columns)}: give the text column "
                          f"({text!r}) and one answer column")
    if fields is not None and (extra := [c for c in rest if c not in fields]):
        raise ConfigError(f"examples has columns that are not fields: {extra}; the fields "
                          f"are {list(fields)} and the text column is {text!r}")
    out = []
    for label, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        values: dict[Hashable, Any] = dict(zip(frame.columns, row, strict=True))
        answer: Any = ({c: _plain(values[c]) for c in rest} if fields is not None
                       else _plain(values[rest[0]]))
        out.append((values[text], answer, f"examples row {label!r}"))
    return out


def _plain(value: Any) -> Any:
    """A DataFrame cell as a plain Python value: NA is None, NumPy scalars unwrapped."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if value is None or pd.isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def examples_block(pairs: Sequence[tuple[str, Any, str]], render: Render) -> str:
    """The `Examples:` block (empty without examples); a `ConfigError` names the first
    example whose text is empty or whose answer `render` refuses, and says why."""
    shown = []
    for text, answer, where in pairs:
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}: the text must be a non-empty string, got {text!r:.80}")
        try:
            written = render(answer)
        except ValueError as error:
            raise ConfigError(f"{where} ({text!r:.60} -> {answer!r:.80}): {error}. Fix or drop "
                              "that example") from None
        shown.append(f"Text: {text.strip()}\nAnswer: {written}")
    return "\n\n".join(["Examples:", *shown]) if shown else ""


def with_examples(system: str, block: str) -> str:
    return f"{system}\n\n{block}" if block else system
