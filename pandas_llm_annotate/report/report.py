"""`Report`: the frozen summary of one run, what `last_report()` returns.

Its notebook view (`_repr_html_`) and `plot()` are drawn by the display layer,
which registers itself here (`set_view`) when imported: the report never imports
the display.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .metrics import Metrics, saved_by_dedupe

FAILURE_COLUMNS = ["index", "text", "error", "raw_answer"]
# extract: one line per wrong field (`field` names it) or per row without an answer (NA)
FIELD_FAILURE_COLUMNS = ["index", "text", "field", "error", "raw_answer"]
SEMANTIC_HIT_COLUMNS = ["index", "text", "cached_text", "similarity", "answer"]
_NOT_IN_DICT = ("failures", "latencies", "answered_at", "limited_at", "semantic_hits",
                "semantic_hit_count")
_views: dict[str, Callable[..., Any]] = {}


def set_view(**views: Callable[..., Any]) -> None:
    """The display layer's renderers: `html` and `plot` of a Report, `estimate_html`."""
    _views.update(views)


def view(name: str) -> Callable[..., Any]:
    return _views[name]  # set by display.html, which the package's __init__ imports


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values), q))


@dataclass(frozen=True)
class Report:
    """What a run did. `to_dict()` is JSON-serialisable; `failures` is a DataFrame
    with one row per row that got no answer (index, text preview, error, raw answer);
    for `extract` it has a `field` column too, and one row per wrong field (the field
    is NA in the result, the other fields kept), `field` NA for a row without an answer."""

    rows: int
    missing: int
    distinct: int
    chunks: int
    cache_hits: int
    requests: int
    retries: int
    rate_limited: int
    failed: int  # rows without an answer (failed, or never asked when the run stopped)
    elapsed_s: float
    rows_per_s: float
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    ttft_p50_s: float | None
    prompt_tokens: int
    completion_tokens: int
    max_in_flight: int
    rows_per_request: float | None  # None: no answer came in this run
    tokens_per_row: float | None
    reasked: int
    answer_format: str  # "": no request in this run
    window: int  # the bound on requests in flight at the last send (several servers: summed)
    status: str
    message: str
    failures: pd.DataFrame = field(repr=False, compare=False)
    model: str = ""
    answered: int = 0  # rows with an answer (missing cells not counted)
    fields_failed: int = 0  # extract: wrong fields (lines of `failures` that name a field)
    cost_usd: float | None = None  # where the model's price is known (`pricing.py`)
    batch: bool = False  # sent through a Batch API (cost at the batch price)
    batches: int = 0  # batches this run submitted
    batches_resumed: int = 0  # batches of an earlier run this run waited for and collected
    # Semantic cache: the count (`semantic_hits` in to_dict), the one-off embedder load, and
    # the audit table, one row per row answered from a near-identical text.
    semantic_hit_count: int = 0
    embedder_load_s: float | None = None
    semantic_hits: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=SEMANTIC_HIT_COLUMNS), repr=False,
        compare=False)
    # Several servers (`base_url=[...]`): per server (URL without credentials) requests,
    # answers, errors, set_aside, p50_s and share of the answers.
    servers: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    # The raw series behind the charts (`plot()`, the HTML view); not in `to_dict()`.
    latencies: tuple[float, ...] = field(default=(), repr=False, compare=False)
    answered_at: tuple[float, ...] = field(default=(), repr=False, compare=False)
    limited_at: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_metrics(cls, m: Metrics, failures: pd.DataFrame | None = None,
                     semantic_hits: pd.DataFrame | None = None) -> Report:
        elapsed = m.elapsed
        if failures is None:
            failures = pd.DataFrame(columns=FAILURE_COLUMNS)
        if semantic_hits is None:
            semantic_hits = pd.DataFrame(columns=SEMANTIC_HIT_COLUMNS)
        fields_failed = int(failures["field"].notna().sum()) if "field" in failures else 0
        failed = len(failures) - fields_failed
        return cls(
            rows=m.rows, missing=m.missing, distinct=m.distinct, chunks=m.pieces,
            cache_hits=m.cache_hits, requests=m.requests, retries=m.retries,
            rate_limited=m.rate_limited, failed=failed, fields_failed=fields_failed,
            answered=m.rows - m.missing - failed,
            elapsed_s=round(elapsed, 4),
            rows_per_s=round(m.rows_done / elapsed, 2) if elapsed > 0 else 0.0,
            p50_s=_pct(m.latencies, 50), p95_s=_pct(m.latencies, 95),
            p99_s=_pct(m.latencies, 99), ttft_p50_s=_pct(m.ttfts, 50),
            prompt_tokens=m.prompt_tokens, completion_tokens=m.completion_tokens,
            max_in_flight=m.max_in_flight,
            rows_per_request=round(m.packed_rows / m.answers, 2) if m.answers else None,
            tokens_per_row=(round((m.prompt_tokens + m.completion_tokens) / m.packed_rows, 1)
                            if m.packed_rows else None),
            reasked=m.reasked, answer_format=m.answer_format if m.answers else "",
            window=m.window,
            status=m.status, message=m.message,
            failures=failures, model=m.model, cost_usd=m.cost_usd, batch=m.batch,
            batches=m.batches_submitted, batches_resumed=m.batches_resumed,
            semantic_hit_count=m.semantic_hits, embedder_load_s=m.embedder_load_s,
            semantic_hits=semantic_hits,
            servers={name: stats.summary(sum(s.answers for s in m.servers.values()))
                     for name, stats in m.servers.items()},
            latencies=tuple(m.latencies), answered_at=tuple(m.answered_at),
            limited_at=tuple(m.limited_at),
        )

    @classmethod
    def not_started(cls, rows: int, message: str) -> Report:
        """The report of a call that stopped before its run began (e.g. a ConfigError)."""
        m = Metrics(rows=rows)
        m.finish("failed", message)
        return replace(cls.from_metrics(m), answered=0, failed=rows)

    @property
    def saved_by_dedupe(self) -> int:
        return saved_by_dedupe(self.rows, self.missing, self.distinct)

    @property
    def calls_saved(self) -> int:
        """Requests that dedupe and the caches (exact and semantic) made unnecessary."""
        asked = self.chunks - self.cache_hits - self.semantic_hit_count
        return max(0, self.rows - self.missing - asked)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: getattr(self, k) for k in self.__dataclass_fields__ if k not in _NOT_IN_DICT
        }
        for k, v in out.items():
            if isinstance(v, float) and math.isnan(v):
                out[k] = None
        out["calls_saved"] = self.calls_saved
        out["semantic_hits"] = self.semantic_hit_count
        hits = self.semantic_hits.astype(object).where(self.semantic_hits.notna(), None)
        out["semantic_matches"] = [
            {k: (v if isinstance(v, (str, int, float, type(None))) else str(v))
             for k, v in row.items()}
            for row in hits.to_dict(orient="records")
        ]
        records = self.failures.astype(object).where(self.failures.notna(), None)
        out["failures"] = [
            {k: (v if isinstance(v, (str, int, float, type(None))) else str(v))
             for k, v in row.items()}
            for row in records.to_dict(orient="records")
        ]
        return out

    def _repr_html_(self) -> str:
        """The report as a notebook shows it: numbers, failures, charts (`display/html.py`)."""
        return str(view("html")(self))

    def plot(self, *, bins: int = 40) -> Any:
        """A matplotlib Figure: latency histogram and answers over time (`display/html.py`)."""
        return view("plot")(self, bins=bins)

    def __repr__(self) -> str:
        def sec(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}s"

        asked = self.rows - self.missing
        answered = "" if self.answered == asked else f" ({self.answered} of {asked} answered)"
        return (
            f"<Report {self.status}: {self.rows} rows{answered}, {self.distinct} distinct, "
            f"{self.cache_hits} cached, {self.requests} requests, {self.retries} retries, "
            f"{self.rate_limited} rate-limited, {self.failed} failed, "
            f"{self.elapsed_s:.2f}s, {self.rows_per_s:.1f} rows/s, "
            f"p50 {sec(self.p50_s)}, p95 {sec(self.p95_s)}>"
        )
