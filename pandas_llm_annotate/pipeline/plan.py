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
    non-string cells are converted with `str()`; equal texts share one code."""
    cells = values.to_numpy(dtype=object)
    present = np.flatnonzero(~pd.isna(cells)).tolist()
    positions: list[int] = []
    texts: list[str] = []
    for i in present:
        cell = cells[i]
        text = cell if type(cell) is str else str(cell)
        if text and not text.isspace():
            positions.append(i)
            texts.append(text)
    codes, uniques = pd.factorize(np.array(texts, dtype=object))
    return Plan(
        rows=len(cells),
        positions=np.asarray(positions, dtype=np.int64),
        codes=codes.astype(np.int64),
        texts=list(uniques),
    )

