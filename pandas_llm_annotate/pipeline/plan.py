"""Plan a run: drop missing cells, dedupe texts, and say which text each row takes its
answer from (the task spreads the answers: `tasks/output.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Plan:
    """Distinct texts of a column and where each row finds its answer.

    `positions[i]` is the row position of the i-th non-missing cell and
    `codes[i]` the index of its text in `texts`.
    """

    rows: int
    positions: np.ndarray
    codes: np.ndarray
    texts: list[str]

    @property
    def missing(self) -> int:
        return self.rows - len(self.positions)

    def rows_per_text(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.texts))

    def take(self) -> np.ndarray:
        """For each row, the id of its text, or `len(texts)` for a missing cell."""
        out = np.full(self.rows, len(self.texts), dtype=np.int64)
        out[self.positions] = self.codes
        return out

    def rows_of(self, text_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Row positions whose text is one of `text_ids`, and each one's text id."""
        mask = np.isin(self.codes, np.asarray(text_ids, dtype=np.int64))
        return self.positions[mask], self.codes[mask]


def plan_column(values: pd.Series) -> Plan:
    """Missing cells (NaN, None, pd.NA, empty or blank strings) get no text; other
    non-string cells are converted with `str()`; equal texts share one code.

    Vectorised: the present cells are factorized once (C speed), and only the distinct
    values are looked at in Python (converted, checked for blanks)."""
    if isinstance(values.dtype, pd.StringDtype):  # pandas' own strings (Arrow or not):
        # factorized where they are, never a Python object per row
        every, found = values.factorize(use_na_sentinel=True)
        present = np.flatnonzero(every >= 0)
        codes, uniques, strings = every[present], np.asarray(found, dtype=object), True
    else:
        cells = values.to_numpy(dtype=object)
        present = np.flatnonzero(~pd.isna(cells))
        kept = cells[present]
        strings = pd.api.types.infer_dtype(kept, skipna=False) in ("string", "empty")
        if strings:
            codes, uniques = pd.factorize(kept)
    if not strings or any(type(u) is not str for u in uniques):
        # Other cells: converted one by one first, so values that are equal but print
        # apart (1 and True, 1 and 1.0) stay apart, as their texts do.
        kept = np.array([c if type(c) is str else str(c)
                         for c in values.to_numpy(dtype=object)[present]], dtype=object)
        codes, uniques = pd.factorize(kept)
    texts: list[str] = list(uniques)
    blank = np.fromiter((not t or t.isspace() for t in texts), dtype=bool, count=len(texts))
    if blank.any():  # drop the rows of blank texts and renumber the others
        renumber = np.cumsum(~blank) - 1
        keep = ~blank[codes]
        present, codes = present[keep], renumber[codes[keep]]
        texts = [t for t, b in zip(texts, blank, strict=True) if not b]
    return Plan(rows=len(values), positions=present.astype(np.int64),
                codes=np.asarray(codes, dtype=np.int64), texts=texts)
