"""Metrics collect a run's numbers while it runs (`report.py` freezes them).

Collecting is cheap (counters and a list append) because it sits on the request
path. Drawing them is the display's job.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from .pricing import BATCH_DISCOUNT, Price, cost_usd


@dataclass
class Usage:
    """Sums over answers whose server reported `usage`: what the estimate learns from."""

    requests: int = 0
    estimated_prompt: float = 0.0  # our estimate of their prompt tokens
    prompt: int = 0  # what the server counted
    completion: int = 0
    latency: float = 0.0  # summed over the `timed` answers
    timed: int = 0  # answers with a latency of their own (not those of a batch)

    def add(self, estimate: float, prompt: int, completion: int,
            latency: float | None) -> None:
        self.requests += 1
        self.estimated_prompt += estimate
        self.prompt += prompt
        self.completion += completion
        if latency is not None:
            self.timed += 1
            self.latency += latency


@dataclass(frozen=True)
class BatchProgress:
    """One batch of a Batch API run as its last status check saw it."""

    id: str
    status: str  # validating, in_progress, finalizing, completed, failed, expired, cancel…
    total: int
    completed: int
    failed: int


@dataclass
class ServerStats:
    """One server's share of a run with several (`base_url=[...]`): attempts sent there
    (retries included), answers, errors, times it was set aside, latencies."""

    requests: int = 0
    answers: int = 0
    errors: int = 0
    set_aside: int = 0
    latencies: list[float] = field(default_factory=list)

    def summary(self, answers: int) -> dict[str, Any]:
        """JSON-ready; `share`: this server's part of the run's `answers`."""
        p50 = statistics.median(self.latencies) if self.latencies else None
        return {"requests": self.requests, "answers": self.answers, "errors": self.errors,
                "set_aside": self.set_aside, "p50_s": p50,
                "share": round(self.answers / answers, 4) if answers else None}


def saved_by_dedupe(rows: int, missing: int, distinct: int) -> int:
    """Requests that dedupe saved: present cells less distinct texts."""
    return max(0, rows - missing - distinct)


@dataclass
class Metrics:
    """Live counters of one run. Written by the core, read by progress and reports."""

    rows: int = 0
    missing: int = 0
    distinct: int = 0
    pieces: int = 0
    cache_hits: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    rows_done: int = 0
    answers: int = 0  # requests answered
    packed_rows: int = 0  # texts those answers carried
    reasked: int = 0  # texts asked again after a pack answer missed or garbled them
    rows_per_request_target: int = 1
    answer_format: str = "plain"  # structured-output form of the last answered request
    semantic_hits: int = 0  # texts answered from the semantic cache
    embedder_load_s: float | None = None  # semantic: the one-off embedder load, apart
    window: int = 0  # the limiter's current bound on requests in flight
    errors: int = 0  # requests that ended in an error (429s included)
    answered_at: list[float] = field(default_factory=list)  # seconds since start, per answer
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    status: str = "running"
    message: str = ""
    notice: str = ""  # what went wrong beside the answers (e.g. the cache stopped)
    model: str = ""  # the model asked, for its price
    price: Price | None = None  # USD per 1M prompt/completion tokens; None: `pricing.PRICES`
    max_cost: float | None = None  # the run's spending cap (USD), shown beside the cost
    limited_at: list[float] = field(default_factory=list)  # seconds since start, per 429
    usage: Usage = field(default_factory=lambda: Usage())  # answers that carried `usage`
    batch: bool = False  # through a Batch API (rows it did not answer may go online)
    batch_tokens: tuple[int, int] = (0, 0)  # prompt, completion of batch answers: discounted
    batches: dict[str, BatchProgress] = field(default_factory=dict)  # by batch id
    batches_submitted: int = 0  # batches this run created
    batches_resumed: int = 0  # batches of an earlier run this run waited for


    servers: dict[str, ServerStats] = field(default_factory=dict)  # by URL (no credentials)

    def sending(self, *, retry: bool) -> None:
        if retry:
            self.retries += 1
        else:
            self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def answered(self, latency: float, ttft: float | None, prompt: int | None,
                 completion: int | None, *, estimate: int = 0) -> None:
        self.in_flight -= 1
        if prompt is not None and completion is not None:  # for the estimate's calibration
            self.usage.add(estimate, prompt, completion, latency)
        self.latencies.append(latency)
        self.answered_at.append(time.perf_counter() - self.started)
        if ttft is not None:
            self.ttfts.append(ttft)
        self.prompt_tokens += prompt or 0
        self.completion_tokens += completion or 0

    def batch_answered(self, prompt: int | None, completion: int | None, *,
                       estimate: int | None = None) -> None:
        """A request of a batch answered (no latency: the batch has its own timing);
        with our `estimate` of its prompt it calibrates later estimates too."""
        if prompt is not None and completion is not None and estimate is not None:
            self.usage.add(estimate, prompt, completion, None)
        self.prompt_tokens += prompt or 0
        self.completion_tokens += completion or 0
        self.batch_tokens = (self.batch_tokens[0] + (prompt or 0),
                             self.batch_tokens[1] + (completion or 0))

    def packed(self, rows: int) -> None:
        self.answers += 1
        self.packed_rows += rows

    def abandoned(self) -> None:
        """A request cancelled in flight (Ctrl-C, a fatal error elsewhere)."""
        self.in_flight -= 1

    def errored(self, *, rate_limited: bool) -> None:
        self.in_flight -= 1
        self.errors += 1
        if rate_limited:
            self.rate_limited += 1
            self.limited_at.append(time.perf_counter() - self.started)

    @property
    def saved_by_dedupe(self) -> int:
        return saved_by_dedupe(self.rows, self.missing, self.distinct)

    @property
    def cost_usd(self) -> float | None:
        """USD for the tokens so far, where the model's price is known; the tokens of
        batch answers at the batch price (`BATCH_DISCOUNT` of it)."""
        usd = cost_usd(self.model, self.prompt_tokens, self.completion_tokens, self.price)
        batch = cost_usd(self.model, *self.batch_tokens, self.price)
        return None if usd is None or batch is None else usd - batch * (1 - BATCH_DISCOUNT)

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return end - self.started

    def finish(self, status: str, message: str = "") -> None:
        if self.finished is None:
            self.finished = time.perf_counter()
            self.status = status
            self.message = "; ".join(filter(None, (message, self.notice)))

    def note(self, notice: str) -> None:
        """Something the user must know beside the answers; joins the final message."""
        if notice and notice != self.notice:
            self.notice = notice
            if self.finished is not None:
                self.message = "; ".join(filter(None, (self.message, notice)))
