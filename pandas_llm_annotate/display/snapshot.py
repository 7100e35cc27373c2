"""What a view shows: a `Snapshot` of a run's `Metrics` at one moment (the text
bar's lines are laid out from it in `text_layout.py`)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..report.metrics import BatchProgress, Metrics
from .fmt import fmt_cost

RATE_WINDOW_S = 10.0  # rows/s and ETA over the last this many seconds
LATENCY_SAMPLE = 20_000  # live percentiles over at most the last this many answers


@dataclass(frozen=True)
class Snapshot:
    """What a view shows, computed from `Metrics` at one moment."""

    status: str  # running | finished | interrupted | failed
    message: str
    rows: int
    done: int
    elapsed: float
    rate: float | None  # rows/s
    eta: float | None  # seconds left
    in_flight: int
    window: int  # the limiter's bound on requests in flight (0: none yet)
    requests: int
    retries: int
    rate_limited: int
    errors: int  # errors other than 429s
    p50: float | None
    p95: float | None
    ttft_p50: float | None
    saved_dedupe: int
    saved_cache: int
    saved_semantic: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    max_cost: float | None  # the run's cap, shown beside the cost
    model: str
    batches: tuple[BatchProgress, ...] = ()  # batch=True: each batch at its last check

    @property
    def fraction(self) -> float:
        return self.done / self.rows if self.rows else 1.0


class Meter:
    """Rows/s and ETA over a sliding window of the rows done at each draw.

    Samples start with the first request, so cache hits and missing cells, which are
    done at once, do not inflate the rate.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, m: Metrics) -> None:
        if m.requests == 0:
            return
        self.samples.append((now, m.rows_done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window_s:
            self.samples.popleft()

    def rate(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values[-LATENCY_SAMPLE:]), q))


def outcome_of(exc: BaseException | None) -> str:
    """The final status an exception leaving the run means."""
    if exc is None:
        return "finished"
    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
        return "interrupted"
    return "failed"


def snapshot(m: Metrics, meter: Meter | None = None, *,
             outcome: BaseException | Literal["running"] | None = "running") -> Snapshot:
    """Read `m` now. `outcome` is "running" while the run goes on, else the exception
    that ended it (None: it returned); the status then comes from `m` when the core
    already set it there."""
    status, message = m.status, m.message
    if status == "running" and outcome != "running":
        status = outcome_of(outcome if isinstance(outcome, BaseException) else None)
        message = _fallback_message(status, m, outcome)
    done = min(m.rows_done, m.rows)
    elapsed = m.elapsed
    if status == "running":
        rate = meter.rate() if meter is not None else None
        eta = (m.rows - done) / rate if rate else None
    else:
        rate = m.rows_done / elapsed if elapsed > 0 else None
        eta = None
    return Snapshot(
        status=status, message=message, rows=m.rows, done=done, elapsed=elapsed,
        rate=rate, eta=eta, in_flight=m.in_flight, window=m.window,
        requests=m.requests, retries=m.retries, rate_limited=m.rate_limited,
        errors=max(0, m.errors - m.rate_limited),
        p50=_pct(m.latencies, 50), p95=_pct(m.latencies, 95), ttft_p50=_pct(m.ttfts, 50),
        saved_dedupe=m.saved_by_dedupe, saved_cache=m.cache_hits,
        saved_semantic=m.semantic_hits, prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens, cost=m.cost_usd, model=m.model,
        max_cost=m.max_cost, batches=tuple(m.batches.values()),
    )


def _fallback_message(status: str, m: Metrics, outcome: object) -> str:
    if status == "interrupted":
        return (f"interrupted at {m.rows_done:,} of {m.rows:,} rows; the answers so far "
                "are saved in the cache, a rerun asks only for the rest")
    if status == "failed":
        return str(outcome) or type(outcome).__name__
    return ""


def limit_text(s: Snapshot) -> str:
    return f"{s.in_flight} / {s.window}" if s.window else f"{s.in_flight} / —"


def cost_text(s: Snapshot) -> str:
    """`$0.0123`, or `$0.0123 / $0.50` against a `max_cost`; `—` when the price is unknown."""
    spent = fmt_cost(s.cost)
    return spent if s.max_cost is None else f"{spent} / {fmt_cost(s.max_cost)}"


def batch_text(b: BatchProgress) -> str:
    """One batch: its status and request counts."""
    counts = f"{b.completed:,}/{b.total:,} done" if b.total else "counting"
    return f"{b.id} {b.status.replace('_', ' ')} {counts}" + (
        f", {b.failed:,} failed" if b.failed else "")


def batches_text(s: Snapshot, most: int = 3) -> str:
    """The batches of a batch run, the last `most` of them, or ""."""
    shown = [batch_text(b) for b in s.batches[-most:]]
    more = len(s.batches) - len(shown)
    return "batches: " + "; ".join(shown) + (f" (+{more} more)" if more else "") if shown else ""
