"""The report's tables: `failures` (one row per row without an answer, and for a task
with fields one per wrong field) and `semantic_hits` (one row per row whose answer came
from a semantic hit)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..report.report import FAILURE_COLUMNS, FIELD_FAILURE_COLUMNS, SEMANTIC_HIT_COLUMNS
from ..tasks.base import FieldProblem
from .pieces import Pieces
from .plan import Plan

PREVIEW_CHARS = 80  # of a text in the failures table


def empty_hits() -> pd.DataFrame:
    return pd.DataFrame(columns=SEMANTIC_HIT_COLUMNS)


def hits_table(plan: Plan, index: pd.Index, users: Callable[[str], Sequence[int]],
               hits: Mapping[str, Any]) -> pd.DataFrame:
    """Rows (by the frame's index) answered from a semantic hit: the text (or chunk),
    the cached text whose answer it reused, the cosine similarity and the answer.

    `hits` maps a piece key to a `stage.Hit`; `users(key)` gives the ids of the texts
    that contain the piece.
    """
    if not hits:
        return empty_hits()
    by_text: dict[int, list[Any]] = {}
    for key, hit in hits.items():
        for tid in users(key):
            by_text.setdefault(tid, []).append(hit)
    rows, codes = plan.rows_of(list(by_text))
    order = np.argsort(rows, kind="stable")
    records = [
        (index[row], hit.text, hit.source_text, hit.similarity, hit.answer)
        for row, code in zip(rows[order], codes[order], strict=True)
        for hit in by_text[int(code)]
    ]
    return pd.DataFrame.from_records(records, columns=SEMANTIC_HIT_COLUMNS)


Line = tuple["str | None", str, "str | None"]  # (field or None for the row, error, raw)


def failures_table(plan: Plan, index: pd.Index, pieces: Pieces,
                   failed: Mapping[str, tuple[str, str | None]], answers: Mapping[str, str],
                   unasked: str, problems: Mapping[str, Sequence[FieldProblem]] | None = None,
                   filled: Callable[[int], frozenset[str]] | None = None) -> pd.DataFrame:
    """One row per row without an answer: its index, a text preview, the error of its
    first failed piece (`chunk i/n: ...` for a chunked text) and the raw answer; a row
    never asked (the run stopped first) has `unasked` as its error.

    With `problems` (a task with fields): a `field` column, NA for those rows, and one
    more row per field that is null in a row's answer because a piece got it wrong
    (`filled(text id)`: the fields with a value in the text's merged answer): the
    field, the reason, and the raw value as JSON text (None: the field was missing)."""
    by_text: dict[int, list[Line]] = {}
    for tid in _to_look_at(pieces, failed, answers, problems).tolist():
        keys = pieces.keys_of(tid)
        for i, key in enumerate(keys):
            if key in failed:
                error, raw = failed[key]
                by_text[tid] = [(None, _chunk(i, keys) + error, raw)]
                break
        else:
            if not all(k in answers for k in keys):
                by_text[tid] = [(None, unasked, None)]
            elif problems is not None and filled is not None:
                lines = _field_lines(keys, problems, filled(tid))
                if lines:
                    by_text[tid] = lines
    rows, codes = plan.rows_of(list(by_text))
    records = [(index[row], plan.texts[code][:PREVIEW_CHARS], *line)
               for row, code in zip(rows, codes, strict=True) for line in by_text[int(code)]]
    columns = FAILURE_COLUMNS if problems is None else FIELD_FAILURE_COLUMNS
    cells = {name: [r[i] for r in records] for i, name in enumerate(FIELD_FAILURE_COLUMNS)}
    return pd.DataFrame({name: cells[name] for name in columns}, columns=columns)


def _to_look_at(pieces: Pieces, failed: Mapping[str, object], answers: Mapping[str, str],
                problems: Mapping[str, object] | None) -> np.ndarray:
    """The texts with a piece that failed, has no answer, or (with `problems`) has a
    problem: only they can have a line, the others are skipped at array speed."""
    flag = np.fromiter((k not in answers for k in pieces.text), dtype=bool,
                       count=len(pieces.text))
    for marked in (failed, problems or {}):
        if marked:
            numbers = pieces.numbers(marked)
            flag[numbers[numbers >= 0]] = True
    return np.flatnonzero(pieces.any_per_text(flag))


def _chunk(i: int, keys: Sequence[str]) -> str:
    return f"chunk {i + 1}/{len(keys)}: " if len(keys) > 1 else ""


def _field_lines(keys: Sequence[str], problems: Mapping[str, Sequence[FieldProblem]],
                 filled: frozenset[str]) -> list[Line]:
    """The first problem of each field left without a value, in piece order."""
    lines: dict[str, Line] = {}
    for i, key in enumerate(keys):
        for p in problems.get(key, ()):
            if p.field not in filled and p.field not in lines:
                lines[p.field] = (p.field, _chunk(i, keys) + p.reason, p.raw)
    return list(lines.values())
