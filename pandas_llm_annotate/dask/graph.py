"""`annotate` on a Dask Series: a lazy graph in three steps.

1. Distinct texts: each partition's texts counted (`plan_column`, so missing cells and
   `str()` conversion are the pandas path's), then added up per text in a
   `groupby(...).sum(split_out=n)`: n partitions of distinct texts, each text in one.
2. One pandas run per partition of distinct texts, on the workers (the cache, chunks,
   packing, retries, several servers: the pandas pipeline), under the cluster's rate
   budget (`coordinator.py`, `lease.py`); then one task gathers the answers (a Series
   text -> answer: memory grows with the distinct texts) and one report.
3. Each input partition looks its rows' texts up in that Series.

The input column is computed twice (steps 1 and 3): a Parquet source is read twice;
persist the frame first when that costs more than it saves.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pandas as pd
from dask.delayed import delayed

from .. import api
from ..config import Settings, resolve
from ..errors import ConfigError
from ..pipeline.cache import resolve_path
from ..pipeline.plan import plan_column
from ..report.combine import combine
from ..report.report import Report
from ..tasks.output import broadcast
from .coordinator import coordinators
from .lease import leased

COUNTS_META = pd.DataFrame({"text": pd.Series(dtype=object), "rows": pd.Series(dtype="int64")})


def annotate(values: Any, prompt: str | None, labels: Any, options: dict[str, Any]) -> Any:
    """The answers for a Dask Series, lazily: a Dask Series with its index and name."""
    settings = resolve(**options).check()  # here: configure() and the environment of the client
    if settings.max_cost is not None:
        raise ConfigError("max_cost= is not supported on Dask yet (each partition's run would "
                          "get the whole budget). Estimate first (df.llm.estimate on a pandas "
                          "sample), or run without max_cost.")
    servers = coordinators(settings.base_urls, settings.api_key, str(settings.model),
                           max_concurrency=settings.max_concurrency, timeout=settings.timeout,
                           rpm=settings.rpm, tpm=settings.tpm)
    task = _worker_options(settings, cluster_wide=servers is not None)
    counts = values.map_partitions(_counts, meta=COUNTS_META)
    distinct = counts.groupby("text")["rows"].sum(split_out=values.npartitions)
    parts = [delayed(_annotate_part, pure=False)(part, prompt, labels, task, servers)
             for part in distinct.to_delayed()]
    gathered = delayed(_gather)(parts, values.size)
    meta = pd.Series(dtype=object, name=values.name)
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


def _annotate_part(counts: pd.Series, prompt: str | None, labels: Any, options: dict[str, Any],
                   servers: dict[str, tuple[str, str]] | None) -> dict[str, Any]:
    """On a worker: one pandas run over a partition of distinct texts."""
    texts = pd.Series(counts.index.to_numpy(dtype=object), index=counts.index)
    started = time.time()
    notes: list[str] = []
    if servers is None or texts.empty:
        out = api.annotate(texts, prompt, labels=labels, **options)
    else:
        with leased(servers, options["api_key"], str(options["model"]),
                    max_concurrency=options["max_concurrency"],
                    timeout=options["timeout"]) as stocks:
            out = api.annotate(texts, prompt, labels=labels, **options)
            notes = [s.notice for s in stocks if s.notice]
    return {"answers": out, "report": out.attrs[api.REPORT_ATTR], "counts": counts,
            "started": started, "ended": time.time(), "notes": notes}


def _gather(parts: list[dict[str, Any]], rows: int) -> tuple[pd.Series, Report]:
    """All the answers, text -> answer, and the computation's report."""
    answers = pd.concat([p["answers"] for p in parts]) if parts else pd.Series(dtype=object)
    answers.attrs.clear()
    present = sum(int(p["counts"].sum()) for p in parts)
    failed = sum(int(p["counts"][p["answers"].isna()].sum()) for p in parts)
    first = min((p["started"] for p in parts), default=0.0)
    report = combine(
        [(p["report"], p["started"] - first) for p in parts], rows=rows,
        missing=rows - present, failed=failed,
        elapsed=max((p["ended"] for p in parts), default=first) - first,
        notes=[n for p in parts for n in p["notes"]])
    return answers, report


def _apply(values: pd.Series, gathered: tuple[pd.Series, Report]) -> pd.Series:
    answers, report = gathered
    plan = plan_column(values)
    found = answers.reindex(plan.texts) if plan.texts else answers.iloc[:0]
    out = broadcast([None if pd.isna(a) else a for a in found], plan.take(), values)
    out.attrs[api.REPORT_ATTR] = report  # the same in every partition: pandas keeps it
    return out
