"""`ddf.llm` and `dseries.llm` on Dask DataFrames and Series: thin facades over
`graph.annotate`, registered by `dask/__init__.py` once dask.dataframe is imported."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import dask.dataframe as dd

from ..errors import ColumnNotFoundError
from .graph import annotate

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..config import Options


@dd.extensions.register_dataframe_accessor("llm")
class DaskDataFrameAccessor:
    """`ddf.llm.annotate(column, prompt=None, *, labels=None, **options)`: lazy."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def annotate(self, column: Hashable, prompt: str | None = None, *,
                 labels: Sequence[str] | None = None, **options: Unpack[Options]) -> Any:
        """As `DataFrame.llm.annotate`, lazily: a Dask Series of answers with the frame's
        index, computed by the workers. Each distinct text is asked once across all
        partitions, under one rate budget for the cluster. After `compute()`, the result's
        `attrs["llm_report"]` is the report of the whole computation."""
        if column not in self._obj.columns:
            names = ", ".join(map(str, list(self._obj.columns)[:30]))
            raise ColumnNotFoundError(f"No column {column!r} in the Dask DataFrame. "
                                      f"Columns: {names}")
        return annotate(self._obj[column], prompt, labels, dict(options))


@dd.extensions.register_series_accessor("llm")
class DaskSeriesAccessor:
    """`dseries.llm.annotate(prompt=None, *, labels=None, **options)`: lazy."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def annotate(self, prompt: str | None = None, *, labels: Sequence[str] | None = None,
                 **options: Unpack[Options]) -> Any:
        """Like `DaskDataFrame.llm.annotate`, on this Series."""
        return annotate(self._obj, prompt, labels, dict(options))
