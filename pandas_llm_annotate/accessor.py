"""`df.llm` and `series.llm`: thin facades that pick the column and delegate to the core.

No state lives here: pandas may build a new accessor object on every access.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import api
from .errors import ColumnNotFoundError

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .config import Options
    from .report.estimate import Estimate

Labels = Sequence[str] | Mapping[str, str] | None  # a dict: {label: what it means}
Examples = pd.DataFrame | Sequence[tuple[str, Any]] | None


def pick_column(df: pd.DataFrame, column: Hashable, where: str = "the DataFrame") -> pd.Series:
    """`df[column]`, or a ColumnNotFoundError naming the closest columns (`where`: what
    the frame is called in the message, e.g. a file name)."""
    if column not in df.columns:
        names = [str(c) for c in df.columns]
        close = difflib.get_close_matches(str(column), names, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ColumnNotFoundError(
            f"No column {column!r} in {where}.{hint} Columns: {', '.join(names[:30])}"
            + (" …" if len(names) > 30 else "")
        )
    picked = df[column]
    if isinstance(picked, pd.DataFrame):
        raise ColumnNotFoundError(
            f"Column name {column!r} is used {picked.shape[1]} times; rename the duplicates."
        )
    return picked


@pd.api.extensions.register_dataframe_accessor("llm")
class DataFrameAccessor:
    """`df.llm.annotate(column, prompt=None, *, labels=None, **options)` and
    `df.llm.extract(column, schema, prompt=None, **options)`."""

    def __init__(self, obj: pd.DataFrame) -> None:
        self._obj = obj

    def annotate(self, column: Hashable, prompt: str | None = None, *, labels: Labels = None,
                 examples: Examples = None, multi_label: bool = False,
                 **options: Unpack[Options]) -> pd.Series:
        """Ask the LLM about every row of `column`; one answer per row, aligned to the index.

        - `prompt=None, labels=None`: the default task, a 1–3 word lower-case topic.
        - `labels=[...]`: exactly one of the labels (answers are normalised; an answer
          that is not a label becomes NaN and is listed in `last_report().failures`).
          `labels={label: description}`: the descriptions go in the prompt.
        - `multi_label=True` (with labels): a list of every label that applies per row.
        - `prompt="..."`: your instruction; the answer text is returned as is.
        - `examples=`: few-shot examples, a DataFrame (text column + answer column) or a
          list of `(text, answer)` pairs, checked against the labels up front.

        Missing cells (NaN, None, empty) give NaN. Each distinct text is asked once and
        cached. Options (`model`, `base_url`, `api_key`, `max_concurrency`, `max_retries`,
        `timeout`, `max_wait`, `temperature`, `max_tokens`, `max_chunk_tokens`, `cache`,
        `stream`, `progress`, ...) override `pandas_llm_annotate.configure(...)`.
        """
        return api.annotate(pick_column(self._obj, column), prompt, labels=labels,
                            examples=examples, multi_label=multi_label, **options)

    async def aannotate(self, column: Hashable, prompt: str | None = None, *,
                        labels: Labels = None, examples: Examples = None,
                        multi_label: bool = False, **options: Unpack[Options]) -> pd.Series:
        """Async twin of `annotate`, for code that already runs an event loop."""
        return await api.aannotate(pick_column(self._obj, column), prompt, labels=labels,
                                   examples=examples, multi_label=multi_label, **options)

    def extract(self, column: Hashable, schema: Any, prompt: str | None = None, *,
                examples: Examples = None, **options: Unpack[Options]) -> pd.DataFrame:
        """Typed fields from every row of `column`: a DataFrame aligned to the index, one
        column per field (dtypes `string`, `Int64`, `Float64`, `boolean`, `category` for
        a label field, lists for a list-of-labels field).

        `schema`: a dict of field types (`{"amount": float | None, "currency": ["USD",
        "EUR"], "urgent": bool}`), a Pydantic model class, or a JSON Schema object. A
        field the model got wrong is NA, listed with its raw value and the reason in
        `last_report().failures` (column `field`); the row's other fields are kept.
        `examples=`: a DataFrame (text column + one column per field) or a list of
        `(text, {field: value})` pairs. Dedupe, cache, chunking, packing and the options
        are those of `annotate`.
        """
        return api.extract(pick_column(self._obj, column), schema, prompt, examples=examples,
                           **options)

    async def aextract(self, column: Hashable, schema: Any, prompt: str | None = None, *,
                       examples: Examples = None, **options: Unpack[Options]) -> pd.DataFrame:
        """Async twin of `extract`."""
        return await api.aextract(pick_column(self._obj, column), schema, prompt,
                                  examples=examples, **options)

    def estimate(self, column: Hashable, prompt: str | None = None, *,
                 labels: Sequence[str] | None = None, **options: Unpack[Options]) -> Estimate:
        """What `annotate` with the same arguments would ask and cost; sends no request."""
        return api.estimate(pick_column(self._obj, column), prompt, labels=labels, **options)


@pd.api.extensions.register_series_accessor("llm")
class SeriesAccessor:
    """`series.llm.annotate(prompt=None, *, labels=None, **options)` and
    `series.llm.extract(schema, prompt=None, **options)`."""

    def __init__(self, obj: pd.Series) -> None:
        self._obj = obj

    def annotate(self, prompt: str | None = None, *, labels: Labels = None,
                 examples: Examples = None, multi_label: bool = False,
                 **options: Unpack[Options]) -> pd.Series:
        """Like `DataFrame.llm.annotate`, on this Series."""
        return api.annotate(self._obj, prompt, labels=labels, examples=examples,
                            multi_label=multi_label, **options)

    async def aannotate(self, prompt: str | None = None, *, labels: Labels = None,
                        examples: Examples = None, multi_label: bool = False,
                        **options: Unpack[Options]) -> pd.Series:
        """Async twin of `annotate`."""
        return await api.aannotate(self._obj, prompt, labels=labels, examples=examples,
                                   multi_label=multi_label, **options)

    def extract(self, schema: Any, prompt: str | None = None, *, examples: Examples = None,
                **options: Unpack[Options]) -> pd.DataFrame:
        """Like `DataFrame.llm.extract`, on this Series."""
        return api.extract(self._obj, schema, prompt, examples=examples, **options)

    async def aextract(self, schema: Any, prompt: str | None = None, *,
                       examples: Examples = None, **options: Unpack[Options]) -> pd.DataFrame:
        """Async twin of `extract`."""
        return await api.aextract(self._obj, schema, prompt, examples=examples, **options)

    def estimate(self, prompt: str | None = None, *, labels: Sequence[str] | None = None,
                 **options: Unpack[Options]) -> Estimate:
        """What `annotate` with the same arguments would ask and cost; sends no request."""
        return api.estimate(self._obj, prompt, labels=labels, **options)
