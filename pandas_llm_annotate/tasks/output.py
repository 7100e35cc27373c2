"""A task's result: values per distinct text, spread to every row of the input.

`take[i]` is the distinct text of row i, or `len(values)` for a row without one (a
missing cell, or a text that got no answer): those rows get NA.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def _cells(values: Sequence[Any], empty: Any) -> np.ndarray:
    """`values` and then `empty`, as an object array (a list stays one cell)."""
    cells = np.empty(len(values) + 1, dtype=object)
    for i, value in enumerate(values):
        cells[i] = empty if value is None else value
    cells[len(values)] = empty
    return cells


def broadcast(values: Sequence[Any], take: np.ndarray, like: pd.Series) -> pd.Series:
    """An object Series aligned to `like` (index and name); NaN where there is none."""
    return pd.Series(_cells(values, np.nan)[take], index=like.index, name=like.name,
                     dtype=object)


def broadcast_frame(columns: Mapping[str, tuple[Sequence[Any], Any]], take: np.ndarray,
                    like: pd.Series) -> pd.DataFrame:
    """A DataFrame aligned to `like`'s index: one column per `name: (values, dtype)`,
    each value a Python scalar or None; `dtype` object keeps lists as they are."""
    out: dict[str, Any] = {}
    for name, (values, dtype) in columns.items():
        if dtype is object:
            out[name] = _cells(values, None)[take]
        else:
            out[name] = pd.array([*values, None], dtype=dtype).take(take)
    return pd.DataFrame(out, index=like.index, columns=list(columns))
