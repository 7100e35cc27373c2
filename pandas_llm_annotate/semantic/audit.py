"""`report.semantic_hits`: one row per row whose answer came from a semantic hit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import SEMANTIC_HIT_COLUMNS as HIT_COLUMNS
from ..plan import Plan


def empty_hits() -> pd.DataFrame:
    return pd.DataFrame(columns=HIT_COLUMNS)


def hits_table(plan: Plan, index: pd.Index, users: Mapping[str, Sequence[int]],
               hits: Mapping[str, Any]) -> pd.DataFrame:
    """Rows (by the frame's index) answered from a semantic hit: the text (or chunk),
    the cached text whose answer it reused, the cosine similarity and the answer.

    `hits` maps a piece key to a `stage.Hit`; `users` maps it to the ids of the texts
    that contain the piece.
    """
    if not hits:
        return empty_hits()
    by_text: dict[int, list[Any]] = {}
    for key, hit in hits.items():
        for tid in users.get(key, ()):
            by_text.setdefault(tid, []).append(hit)
    rows, codes = plan.rows_of(list(by_text))
    order = np.argsort(rows, kind="stable")
    records = [
        (index[row], hit.text, hit.source_text, hit.similarity, hit.answer)
        for row, code in zip(rows[order], codes[order], strict=True)
        for hit in by_text[int(code)]
    ]
    return pd.DataFrame.from_records(records, columns=HIT_COLUMNS)
