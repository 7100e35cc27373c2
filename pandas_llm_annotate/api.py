"""The public entry points: `aannotate` (async core) and `annotate` (its thin sync edge).

Each run's report is attached to the Series it returns (`out.attrs["llm_report"]`),
so two runs at once never mix their reports; `last_report()` is the report of the
run that ended last in this process.
"""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd

from .config import resolve
from .display.progress import show
from .pipeline.run import Run
from .report.report import Report
from .sync import run_sync

REPORT_ATTR = "llm_report"  # the key of a result's report in `Series.attrs`
_last: list[Report] = []  # the report of the run that ended last (a frozen copy)
_lock = threading.Lock()


def _series(values: Any) -> pd.Series:
    return values if isinstance(values, pd.Series) else pd.Series(values)


async def aannotate(values: Any, prompt: str | None = None, *, labels: Any = None,
                    **options: Any) -> pd.Series:
    """Async twin of `annotate`."""
    settings = resolve(**options).check()
    run = Run(_series(values), prompt, labels, settings)
    try:
        async with show(run.metrics, settings.progress):
            out = await run.execute()
    finally:
        report = run.report()
        with _lock:
            _last[:] = [report]
    out.attrs[REPORT_ATTR] = report
    return out


def annotate(values: Any, prompt: str | None = None, *, labels: Any = None,
             **options: Any) -> pd.Series:
    """Label every value with the LLM; see `DataFrameAccessor.annotate` for the arguments."""
    return run_sync(aannotate(values, prompt, labels=labels, **options))


def last_report() -> Report | None:
    """The report of the run that ended last in this process (also after an interrupt or
    a failure), or None. For a given result, `out.attrs["llm_report"]` is its own."""
    with _lock:
        return _last[0] if _last else None
