"""`annotate` and `extract` on a Dask Series: a lazy graph in three steps.

1. Distinct texts: each partition's texts counted (`plan_column`, so missing cells and
   `str()` conversion are the pandas path's), then added up per text in a
   `groupby(...).sum(split_out=n)`: n partitions of distinct texts, each text in one.
2. One pandas run per partition of distinct texts, on the workers (the cache, chunks,
   packing, retries, several servers: the pandas pipeline), under the cluster's rate
   budget (`coordinator.py`, `lease.py`); then one task gathers the answers (a Series
   text -> answer, or a frame of fields: memory grows with the distinct texts) and one
   report.
3. Each input partition looks its rows' texts up in them: the pandas path's values and
   dtypes (`meta` is the task's output for no rows).

The input column is computed twice (steps 1 and 3): a Parquet source is read twice;
persist the frame first when that costs more than it saves.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from dask.delayed import delayed

from .. import api
from ..config import Settings, resolve
from ..errors import ConfigError
from ..pipeline.cache_file import resolve_path
from ..pipeline.plan import plan_column
from ..report.combine import combine
from ..report.report import Report
from ..tasks.base import Task
from ..tasks.labels import LabelTask
from ..tasks.schema import SchemaTask
from .coordinator import coordinators
from .lease import leased

_MISSING = object()  # the key of a missing cell's answer: equal to no text
COUNTS_META = pd.DataFrame({"text": pd.Series(dtype=object), "rows": pd.Series(dtype="int64")})


def annotate(values: Any, prompt: str | None, labels: Any, *, examples: Any = None,
             multi_label: bool = False, options: dict[str, Any]) -> Any:
    """`annotate`'s answers for a Dask Series, lazily: a Dask Series (its index, its name)."""
    def task(settings: Settings) -> Task:
        return LabelTask.build(prompt, labels, settings.max_tokens, examples=examples,
                               multi_label=multi_label, column=values.name)

    call = ("annotate", (prompt,), {"labels": labels, "examples": examples,
                                    "multi_label": multi_label})
    return _lazy(values, task, call, options)


def extract(values: Any, schema: Any, prompt: str | None, *, examples: Any = None,
            options: dict[str, Any]) -> Any:
    """`extract`'s fields for a Dask Series, lazily: a Dask DataFrame, a column per field."""
    def task(settings: Settings) -> Task:
        return SchemaTask.build(schema, prompt, settings.max_tokens, examples=examples,
                                column=values.name)

    return _lazy(values, task, ("extract", (schema, prompt), {"examples": examples}), options)


Call = tuple[str, tuple[Any, ...], dict[str, Any]]  # an `api` function, its arguments


def _lazy(values: Any, make_task: Callable[[Settings], Task], call: Call,
          options: dict[str, Any]) -> Any:
    settings = resolve(**options).check()  # here: configure() and the environment of the client
    if settings.max_cost is not None:
        raise ConfigError("max_cost= is not supported on Dask yet (each partition's run would "
                          "get the whole budget). Estimate first (df.llm.estimate on a pandas "
                          "sample), or run without max_cost.")
    like = pd.Series([], dtype=object, name=values.name)
    meta = make_task(settings).output([], np.zeros(0, dtype=np.int64), like)  # checks it too
    servers = coordinators(settings.base_urls, settings.api_key, str(settings.model),
                           max_concurrency=settings.max_concurrency, timeout=settings.timeout,
                           rpm=settings.rpm, tpm=settings.tpm)
    task = _worker_options(settings, cluster_wide=servers is not None)
    counts = values.map_partitions(_counts, meta=COUNTS_META)
    distinct = counts.groupby("text")["rows"].sum(split_out=values.npartitions)
    parts = [delayed(_annotate_part, pure=False)(part, values.name, call, task, servers)
             for part in distinct.to_delayed()]
    gathered = delayed(_gather)(parts, values.size)
    return values.map_partitions(_apply, gathered, meta=meta)


def _worker_options(settings: Settings, *, cluster_wide: bool) -> dict[str, Any]:
    """The client's settings for the workers, in full (their own `configure` state is not
    the client's); the cache as a path (the same file for every worker of this machine),
    no progress display in the workers; rpm and tpm left to the coordinators when they
    hold them for the whole cluster."""
    options = {f.name: getattr(settings, f.name) for f in dataclasses.fields(Settings)}
    if cluster_wide:
        options["rpm"] = options["tpm"] = None
    if settings.cache is not False:
        options["cache"] = str(resolve_path(None if settings.cache is True else settings.cache))
    options["progress"] = False
    return options


def _counts(values: pd.Series) -> pd.DataFrame:
    plan = plan_column(values)
    return pd.DataFrame({"text": pd.Series(plan.texts, dtype=object),
                         "rows": plan.rows_per_text().astype("int64")})


def _annotate_part(counts: pd.Series, name: Hashable, call: Call, options: dict[str, Any],
                   servers: dict[str, tuple[str, str]] | None) -> dict[str, Any]:
    """On a worker: one pandas run over a partition of distinct texts (indexed by text)."""
    texts = pd.Series(counts.index.to_numpy(dtype=object), index=counts.index, name=name)
    function, args, kwargs = call
    run = partial(getattr(api, function), texts, *args, **kwargs, **options)
    started = time.time()
    notes: list[str] = []
    if servers is None or texts.empty:
        out = run()
    else:
        with leased(servers, options["api_key"], str(options["model"]),
                    max_concurrency=options["max_concurrency"],
                    timeout=options["timeout"]) as stocks:
            out = run()
        notes = [s.notice for s in stocks if s.notice]  # after the last report, if last
    return {"answers": out, "report": out.attrs[api.REPORT_ATTR], "counts": counts,
            "started": started, "ended": time.time(), "notes": notes}


def _gather(parts: list[dict[str, Any]], rows: int) -> tuple[pd.Series | pd.DataFrame, Report]:
    """All the answers, by text (a Series, or a frame of fields), and the report of the
    whole computation."""
    answers = pd.concat([p["answers"] for p in parts])
    answers.attrs.clear()
    present = sum(int(p["counts"].sum()) for p in parts)
    lines = [_failures(p["report"], p["counts"]) for p in parts]
    first = min(p["started"] for p in parts)
    report = combine(
        [(p["report"], p["started"] - first) for p in parts], rows=rows,
        missing=rows - present, failed=sum(f for f, _ in lines),
        fields_failed=sum(w for _, w in lines),
        elapsed=max(p["ended"] for p in parts) - first,
        notes=[n for p in parts for n in p["notes"]])
    return answers, report


def _failures(report: Report, counts: pd.Series) -> tuple[int, int]:
    """Rows without an answer, and wrong fields counted per row, of one part: its
    failures list texts (their index is the text), each standing for `counts` rows."""
    lines = report.failures
    fields = lines["field"].notna() if "field" in lines else pd.Series(False, lines.index)
    rows = counts.reindex(lines["index"]).fillna(0).to_numpy()
    return int(rows[~fields.to_numpy()].sum()), int(rows[fields.to_numpy()].sum())


def _apply(values: pd.Series, gathered: tuple[pd.Series | pd.DataFrame, Report]
           ) -> pd.Series | pd.DataFrame:
    """Each row's answer, by its text (missing cells: NA), with the pandas path's dtypes."""
    answers, report = gathered
    plan = plan_column(values)
    table = answers.reindex([*plan.texts, _MISSING])  # the last line: all NA
    out = table.iloc[plan.take()]
    out.index = values.index
    if isinstance(out, pd.Series):
        out.name = values.name
    out.attrs[api.REPORT_ATTR] = report  # the same in every partition: pandas keeps it
    return out
