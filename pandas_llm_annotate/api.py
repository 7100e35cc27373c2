"""The public entry points: `aannotate` / `aextract` (async core) and `annotate` /
`extract` (their thin sync edge).

Each builds its task (`tasks/`) and hands it to the one pipeline (`pipeline/run.py`).
Each run's report is attached to the result it returns (`out.attrs["llm_report"]`),
so two runs at once never mix their reports; `last_report()` is the report of the
run that ended last in this process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pandas as pd

from .config import Settings, resolve
from .display.progress import show
from .errors import AnnotateError
from .pipeline.run import Run
from .report.report import Report
from .sync import run_sync
from .tasks.base import Task
from .tasks.labels import LabelTask
from .tasks.schema import SchemaTask

REPORT_ATTR = "llm_report"  # the key of a result's report in `Series.attrs`
_last: list[Report] = []  # the report of the run that ended last (a frozen copy)
_lock = threading.Lock()
R = TypeVar("R", pd.Series, pd.DataFrame)


def _series(values: Any) -> pd.Series:
    return values if isinstance(values, pd.Series) else pd.Series(values)


async def aannotate(values: Any, prompt: str | None = None, *, labels: Any = None,
                    examples: Any = None, multi_label: bool = False,
                    **options: Any) -> pd.Series:
    """Async twin of `annotate`."""
    series = _series(values)

    def task(settings: Settings) -> Task:
        return LabelTask.build(prompt, labels, settings.max_tokens, examples=examples,
                               multi_label=multi_label, column=series.name)

    out = await _arun(series, task, options)
    assert isinstance(out, pd.Series)
    return out


async def aextract(values: Any, schema: Any, prompt: str | None = None, *,
                   examples: Any = None, **options: Any) -> pd.DataFrame:
    """Async twin of `extract`."""
    series = _series(values)

    def task(settings: Settings) -> Task:
        return SchemaTask.build(schema, prompt, settings.max_tokens, examples=examples,
                                column=series.name)

    out = await _arun(series, task, options)
    assert isinstance(out, pd.DataFrame)
    return out


async def _arun(series: pd.Series, make_task: Callable[[Settings], Task],
                options: dict[str, Any]) -> pd.Series | pd.DataFrame:
    """One run of the task `make_task` builds, on the one pipeline; its report attached."""
    try:
        settings = resolve(**options).check()
        run = Run(series, make_task(settings), settings)
    except AnnotateError as error:  # no run: its report says why, not the last run's
        _finished(Report.not_started(len(series), str(error)))
        raise
    try:
        async with show(run.metrics, settings.progress):
            out = await run.execute()
    finally:
        report = run.report()
        _finished(report)
    out.attrs[REPORT_ATTR] = report
    return out


def _finished(report: Report) -> None:
    with _lock:
        _last[:] = [report]


def annotate(values: Any, prompt: str | None = None, *, labels: Any = None,
             examples: Any = None, multi_label: bool = False, **options: Any) -> pd.Series:
    """Label every value with the LLM; see `DataFrameAccessor.annotate` for the arguments."""
    return _sync(aannotate(values, prompt, labels=labels, examples=examples,
                           multi_label=multi_label, **options), "annotate")


def extract(values: Any, schema: Any, prompt: str | None = None, *, examples: Any = None,
            **options: Any) -> pd.DataFrame:
    """Typed fields from every value; see `DataFrameAccessor.extract` for the arguments."""
    return _sync(aextract(values, schema, prompt, examples=examples, **options), "extract")


def _sync(coro: Coroutine[Any, Any, R], name: str) -> R:
    """The sync edge: run `coro`; short user errors; Ctrl-C says what was kept."""
    try:
        return run_sync(coro)
    except AnnotateError as error:
        raise shorten(error) from None
    except KeyboardInterrupt:
        report = last_report()
        said = report.message if report is not None and report.message else "interrupted"
        raise KeyboardInterrupt(f"{name} {said}") from None


def shorten(error: AnnotateError) -> AnnotateError:
    """A user error as the sync edge raises it: without the package's frames (the
    message says what to do); its cause stays on `error.cause` and in a one-line note."""
    error.__traceback__ = None
    cause = error.__cause__
    if cause is not None and getattr(error, "cause", None) is None:
        error.cause = cause  # type: ignore[attr-defined]
        if hasattr(error, "add_note"):  # Python 3.11+
            error.add_note(f"(cause: {type(cause).__name__}: {cause}; see error.cause)")
    return error


def last_report() -> Report | None:
    """The report of the run that ended last in this process (also after an interrupt or
    a failure), or None. For a given result, `out.attrs["llm_report"]` is its own."""
    with _lock:
        return _last[0] if _last else None
