"""The public entry points: `aannotate` / `aextract` (async core) and `annotate` /
`extract` (their thin sync edge).

Each builds its task (`tasks/`) and hands it to the one pipeline (`pipeline/run.py`).
Each run's report is attached to the result it returns (`out.attrs["llm_report"]`),
so two runs at once never mix their reports; `last_report()` is the report of the
run that ended last in this process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pandas as pd

from .config import Settings, resolve
from .display.progress import show
from .errors import AnnotateError, BadRequestError, ConfigError
from .pipeline.batch_state import COLUMNS, BatchState, OpenBatch, public_url
from .pipeline.cache_file import resolve_path
from .pipeline.estimate import estimate_run
from .pipeline.run import Run
from .protocol.batch_api import BatchAPI
from .protocol.transport import Transport
from .report.estimate import Estimate
from .report.report import Report
from .sync import run_sync
from .tasks.base import Task
from .tasks.labels import LabelTask
from .tasks.schema import SchemaTask

REPORT_ATTR = "llm_report"  # the key of a result's report in `Series.attrs`
_last: list[Report] = []  # the report of the run that ended last (a frozen copy)
_lock = threading.Lock()
R = TypeVar("R")


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


async def aestimate(values: Any, prompt: str | None = None, *, labels: Any = None,
                    schema: Any = None, examples: Any = None, multi_label: bool = False,
                    **options: Any) -> Estimate:
    """Async twin of `estimate`."""
    series = _series(values)
    settings = resolve(**options).check()
    task: Task
    if schema is not None:  # what `extract` with this schema would ask
        task = SchemaTask.build(schema, prompt, settings.max_tokens, examples=examples,
                                column=series.name)
    else:
        task = LabelTask.build(prompt, labels, settings.max_tokens, examples=examples,
                               multi_label=multi_label, column=series.name)
    run = Run(series, task, settings)
    return await asyncio.to_thread(estimate_run, run)  # reads the cache: off the loop


def estimate(values: Any, prompt: str | None = None, *, labels: Any = None,
             schema: Any = None, examples: Any = None, multi_label: bool = False,
             **options: Any) -> Estimate:
    """What `annotate` (or, with `schema=`, `extract`) with the same arguments would ask
    and cost; sends no request."""
    return _sync(aestimate(values, prompt, labels=labels, schema=schema, examples=examples,
                           multi_label=multi_label, **options), "estimate")


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


def _open_batches(settings: Settings) -> tuple[BatchState, list[OpenBatch]]:
    if settings.cache is False:
        raise ConfigError("Batches are kept in the cache file, and cache=False has none: pass "
                          "the cache= of the run that submitted them (or leave it out).")
    path = resolve_path(None if settings.cache is True else settings.cache)
    state = BatchState.open(path if path.exists() else None)
    return state, state.open_batches()


def _table(found: list[OpenBatch]) -> pd.DataFrame:
    return pd.DataFrame(
        [(b.record.batch_id, b.record.status, b.requests, b.completed, b.failed, b.model,
          b.base_url, pd.Timestamp(b.record.created, unit="s"), b.record.input_file_id)
         for b in found], columns=COLUMNS)


def batches(**options: Any) -> pd.DataFrame:
    """The open batches in the cache file (`cache=`, else the default one): submitted by
    `annotate(..., batch=True)` and not collected yet, with their last known status and
    request counts. Sends no request; the same `annotate` call collects them."""
    state, found = _open_batches(resolve(**options))
    state.close()
    return _table(found)


async def acancel_batches(batch_ids: Any = None, **options: Any) -> pd.DataFrame:
    """Async twin of `cancel_batches`."""
    settings = resolve(**options)
    state, found = _open_batches(settings)
    try:
        ids = None if batch_ids is None else (
            {batch_ids} if isinstance(batch_ids, str) else set(batch_ids))
        known = {b.record.batch_id: b for b in found if b.record.batch_id}
        if ids is not None and not ids <= set(known):
            raise ConfigError(f"No open batch {sorted(ids - set(known))} in the cache file; "
                              f"open: {sorted(known) or 'none'} (see pla.batches()).")
        server = public_url(settings.base_urls[0])
        chosen = [b for i, b in known.items() if ids is None or i in ids]
        elsewhere = sorted({b.base_url for b in chosen if b.base_url != server})
        if elsewhere and ids is not None:  # the key is only ever sent to its own server
            raise ConfigError(f"Those batches were sent to {', '.join(elsewhere)}, not "
                              f"{server}: pass base_url= (and the api_key) of that server.")
        async with Transport(settings.base_urls[0], api_key=settings.api_key,
                             timeout=settings.timeout, max_connections=4,
                             max_response_bytes=settings.max_response_bytes) as transport:
            api = BatchAPI(transport, timeout=settings.timeout)
            for b in chosen:
                if b.base_url == server and b.record.batch_id is not None:
                    try:
                        info = await api.cancel(b.record.batch_id)
                    except BadRequestError:  # it ended meanwhile
                        info = await api.retrieve(b.record.batch_id)
                    state.set_status(info.id, info.status)
        return _table(state.open_batches())
    finally:
        state.close()


def cancel_batches(batch_ids: Any = None, **options: Any) -> pd.DataFrame:
    """Cancel open batches (all those sent to this `base_url`, or the ids given); the
    open batches after it. What a cancelled batch answered is still collected, and the
    rest asked again, by the next run of the same call."""
    try:
        return run_sync(acancel_batches(batch_ids, **options))
    except AnnotateError as error:
        raise shorten(error) from None
