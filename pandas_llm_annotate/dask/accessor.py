"""`ddf.llm` and `dseries.llm` on Dask DataFrames and Series: thin facades over
`graph.py`, registered by `dask/__init__.py` once dask.dataframe is imported."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import dask.dataframe as dd

from ..accessor import Examples, Labels
from ..errors import ColumnNotFoundError
from . import graph

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..config import Options


def _column(ddf: Any, column: Hashable) -> Any:
    if column not in ddf.columns:
        names = ", ".join(map(str, list(ddf.columns)[:30]))
        raise ColumnNotFoundError(f"No column {column!r} in the Dask DataFrame. Columns: {names}")
    return ddf[column]


@dd.extensions.register_dataframe_accessor("llm")
class DaskDataFrameAccessor:
    """`ddf.llm.annotate(column, ...)` and `ddf.llm.extract(column, schema, ...)`: lazy,
    with the arguments of the pandas accessor."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def annotate(self, column: Hashable, prompt: str | None = None, *, labels: Labels = None,
                 examples: Examples = None, multi_label: bool = False,
                 **options: Unpack[Options]) -> Any:
        """As `DataFrame.llm.annotate`, lazily: a Dask Series of answers with the frame's
        index, computed by the workers. Each distinct text is asked once across all
        partitions, under one rate budget for the cluster. After `compute()`, the result's
        `attrs["llm_report"]` is the report of the whole computation."""
        return graph.annotate(_column(self._obj, column), prompt, labels, examples=examples,
                              multi_label=multi_label, options=dict(options))

    def extract(self, column: Hashable, schema: Any, prompt: str | None = None, *,
                examples: Examples = None, **options: Unpack[Options]) -> Any:
        """As `DataFrame.llm.extract`, lazily: a Dask DataFrame, one column per field with
        the pandas path's dtypes, computed as `annotate` is."""
        return graph.extract(_column(self._obj, column), schema, prompt, examples=examples,
                             options=dict(options))


@dd.extensions.register_series_accessor("llm")
class DaskSeriesAccessor:
    """`dseries.llm.annotate(...)` and `dseries.llm.extract(schema, ...)`: lazy."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def annotate(self, prompt: str | None = None, *, labels: Labels = None,
                 examples: Examples = None, multi_label: bool = False,
                 **options: Unpack[Options]) -> Any:
        """Like `DaskDataFrame.llm.annotate`, on this Series."""
        return graph.annotate(self._obj, prompt, labels, examples=examples,
                              multi_label=multi_label, options=dict(options))

    def extract(self, schema: Any, prompt: str | None = None, *, examples: Examples = None,
                **options: Unpack[Options]) -> Any:
        """Like `DaskDataFrame.llm.extract`, on this Series."""
        return graph.extract(self._obj, schema, prompt, examples=examples,
                             options=dict(options))
