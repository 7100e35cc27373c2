"""The report's tables: `failures` (one row per row without an answer) and
`semantic_hits` (one row per row whose answer came from a semantic hit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..report.report import FAILURE_COLUMNS, SEMANTIC_HIT_COLUMNS
from .pieces import Pieces
from .plan import Plan

PREVIEW_CHARS = 80  # of a text in the failures table


def empty_hits() -> pd.DataFrame:
    return pd.DataFrame(columns=SEMANTIC_HIT_COLUMNS)


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
    return pd.DataFrame.from_records(records, columns=SEMANTIC_HIT_COLUMNS)


def failures_table(plan: Plan, index: pd.Index, pieces: Pieces,
                   failed: Mapping[str, tuple[str, str | None]], answers: Mapping[str, str],
                   unasked: str) -> pd.DataFrame:
    """One row per row without an answer: its index, a text preview, the error of its
    first failed piece (`chunk i/n: ...` for a chunked text) and the raw answer; a row
    never asked (the run stopped first) has `unasked` as its error."""
    by_text: dict[int, tuple[str, str | None]] = {}
    for tid, keys in enumerate(pieces.keys):
        for i, key in enumerate(keys):
            if key in failed:
                error, raw = failed[key]
                if len(keys) > 1:
                    error = f"chunk {i + 1}/{len(keys)}: {error}"
                by_text[tid] = (error, raw)
                break
        else:
            if not all(k in answers for k in keys):
                by_text[tid] = (unasked, None)
    rows, codes = plan.rows_of(list(by_text))
    return pd.DataFrame(
        {
            "index": list(index[rows]),
            "text": [plan.texts[c][:PREVIEW_CHARS] for c in codes],
            "error": [by_text[c][0] for c in codes],
            "raw_answer": [by_text[c][1] for c in codes],
        },
        columns=FAILURE_COLUMNS,
    )
