"""One report for a computation made of several runs (a Dask computation: one run per
partition of distinct texts): counts added up, percentiles from all the latencies, the
wall time from the first start to the last end."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .report import FAILURE_COLUMNS, SEMANTIC_HIT_COLUMNS, Report, _pct

_SUMMED = ("distinct", "chunks", "cache_hits", "requests", "retries", "rate_limited",
           "prompt_tokens", "completion_tokens", "reasked", "semantic_hit_count")
_STATUSES = ("failed", "budget", "interrupted")  # the first one any part has wins


def combine(parts: Sequence[tuple[Report, float]], *, rows: int, missing: int, failed: int,
            elapsed: float, fields_failed: int = 0, notes: Sequence[str] = ()) -> Report:
    """`parts`: each run's report and its start, in seconds after the first start.
    `rows`, `missing`, `failed` (rows without an answer), `fields_failed` (wrong fields,
    counted per row): of the whole computation."""
    reports = [r for r, _ in parts]
    sums = {name: sum(getattr(r, name) for r in reports) for name in _SUMMED}
    latencies = [x for r in reports for x in r.latencies]
    weights = [r.requests for r in reports]
    status = next((s for s in _STATUSES if any(r.status == s for r in reports)), "finished")
    messages = list(dict.fromkeys(m for m in [*(r.message for r in reports), *notes] if m))
    formats = Counter(r.answer_format for r in reports if r.answer_format)
    costs = [r.cost_usd for r in reports if r.cost_usd is not None]
    ttfts = [r.ttft_p50_s for r in reports if r.ttft_p50_s is not None]
    return Report(
        rows=rows, missing=missing, failed=failed, answered=rows - missing - failed,
        fields_failed=fields_failed,
        elapsed_s=round(elapsed, 4),
        rows_per_s=round((rows - failed) / elapsed, 2) if elapsed > 0 else 0.0,
        p50_s=_pct(latencies, 50), p95_s=_pct(latencies, 95), p99_s=_pct(latencies, 99),
        ttft_p50_s=statistics.median(ttfts) if ttfts else None,
        max_in_flight=max((r.max_in_flight for r in reports), default=0),
        rows_per_request=_weighted([r.rows_per_request for r in reports], weights),
        tokens_per_row=_weighted([r.tokens_per_row for r in reports], weights),
        answer_format=formats.most_common(1)[0][0] if formats else "",
        window=max((r.window for r in reports), default=0),
        status=status, message="; ".join(messages),
        failures=_concat([r.failures for r in reports], FAILURE_COLUMNS),
        model=next((r.model for r in reports if r.model), ""),
        cost_usd=sum(costs) if costs else None,
        embedder_load_s=max((r.embedder_load_s for r in reports
                             if r.embedder_load_s is not None), default=None),
        semantic_hits=_concat([r.semantic_hits for r in reports], SEMANTIC_HIT_COLUMNS),
        servers=_servers(reports),
        latencies=tuple(latencies),
        answered_at=tuple(sorted(t + start for r, start in parts for t in r.answered_at)),
        limited_at=tuple(sorted(t + start for r, start in parts for t in r.limited_at)),
        **sums,
    )


def _weighted(values: Sequence[float | None], weights: Sequence[int]) -> float | None:
    pairs = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None and w]
    total = sum(w for _, w in pairs)
    return round(sum(v * w for v, w in pairs) / total, 2) if total else None


def _concat(frames: Sequence[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    kept = [f for f in frames if not f.empty]
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=columns)


def _servers(reports: Sequence[Report]) -> dict[str, dict[str, Any]]:
    """Per server: counts added up; p50 the answers-weighted mean of the parts' p50s."""
    out: dict[str, dict[str, Any]] = {}
    for report in reports:
        for name, numbers in report.servers.items():
            into = out.setdefault(name, {"requests": 0, "answers": 0, "errors": 0,
                                         "set_aside": 0, "p50s": []})
            for key in ("requests", "answers", "errors", "set_aside"):
                into[key] += numbers[key]
            if numbers["p50_s"] is not None:
                into["p50s"].append((numbers["p50_s"], numbers["answers"]))
    answers = sum(s["answers"] for s in out.values())
    for numbers in out.values():
        p50s = numbers.pop("p50s")
        numbers["p50_s"] = _weighted([p for p, _ in p50s], [n for _, n in p50s])
        numbers["share"] = round(numbers["answers"] / answers, 4) if answers else None
    return out
