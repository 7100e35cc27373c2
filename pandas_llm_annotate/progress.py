"""Progress only draws: a task that reads `Metrics` every half second and draws a view.

It never sits on the request path; requests only bump counters. Which view:

- in a Jupyter kernel (JupyterLab, Notebook, VS Code) with ipywidgets: a live panel
  (`panel.py`);
- `progress="auto"` elsewhere: a text bar on stderr when stderr is a terminal, else
  nothing; `progress=True`: the text bar anyway (also in a kernel without ipywidgets);
- `progress=False`: nothing.

The last state stays on screen: after the body, the view draws once more with the
run's final status (`metrics.status`/`message`, set by the core before it leaves the
context; if it has not, the status is read from the exception that ends the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from .metrics import Metrics

INTERVAL_S = 0.5  # at most one draw per this many seconds
RATE_WINDOW_S = 10.0  # rows/s and ETA over the last this many seconds
LATENCY_SAMPLE = 20_000  # live percentiles over at most the last this many answers
Mode = Literal["widget", "text", "none"]


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
    model: str

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
        saved_dedupe=max(0, m.rows - m.missing - m.distinct), saved_cache=m.cache_hits,
        saved_semantic=m.semantic_hits, prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens, cost=m.cost_usd, model=m.model,
    )


def _fallback_message(status: str, m: Metrics, outcome: object) -> str:
    if status == "interrupted":
        return (f"interrupted at {m.rows_done:,} of {m.rows:,} rows; the answers so far "
                "are saved in the cache, a rerun asks only for the rest")
    if status == "failed":
        return str(outcome) or type(outcome).__name__
    return ""


# -- formatting shared by the views ---------------------------------------------------------

def fmt_s(seconds: float | None) -> str:
    """`0.213 s`, `12.3 s`, `4 min 05 s`, `1 h 02 min`; `—` for unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 10:
        return f"{seconds:.3f} s" if seconds < 1 else f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "—"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"


def fmt_cost(cost: float | None) -> str:
    if cost is None:
        return "—"
    return f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"


def limit_text(s: Snapshot) -> str:
    return f"{s.in_flight} / {s.window}" if s.window else f"{s.in_flight} / —"


def summary(s: Snapshot) -> str:
    """One line: the text bar's postfix and the panel's plain-text form."""
    parts = [
        f"{s.done:,}/{s.rows:,} rows", f"{fmt_rate(s.rate)} rows/s",
        f"in flight {limit_text(s)}", f"p50 {fmt_s(s.p50)}", f"p95 {fmt_s(s.p95)}",
        f"429s {s.rate_limited}", f"retries {s.retries}", f"errors {s.errors}",
    ]
    if s.status == "running":
        parts.insert(2, f"ETA {fmt_s(s.eta)}")
    if s.cost is not None:
        parts.append(fmt_cost(s.cost))
    return " · ".join(parts)


def final_line(s: Snapshot) -> str:
    """The line a finished run leaves: status, reason, and what was saved."""
    head = f"annotate {s.status} in {fmt_s(s.elapsed)}"
    if s.message:
        head += f": {s.message}"
    saved = (f"saved {s.saved_dedupe:,} calls by dedupe, {s.saved_cache:,} by cache"
             + (f", {s.saved_semantic:,} by semantic cache" if s.saved_semantic else ""))
    tokens = f"tokens {s.prompt_tokens:,} in / {s.completion_tokens:,} out"
    if s.cost is not None:
        tokens += f" ({fmt_cost(s.cost)})"
    return f"{head}\n  {summary(s)}\n  {s.requests:,} requests; {saved}; {tokens}"


# -- views -----------------------------------------------------------------------------------

class View(Protocol):
    def draw(self, s: Snapshot) -> None: ...

    def close(self, s: Snapshot) -> None: ...


class TextView:
    """A tqdm bar on stderr; the final line stays."""

    def __init__(self, total: int, file: Any = None) -> None:
        from tqdm.std import tqdm

        self.file = file if file is not None else sys.stderr
        self.bar = tqdm(total=total, unit="row", desc="annotate", file=self.file, leave=True,
                        dynamic_ncols=True, mininterval=0, miniters=0,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}")

    def draw(self, s: Snapshot) -> None:
        self.bar.n = s.done
        self.bar.set_postfix_str(summary(s), refresh=False)
        self.bar.refresh()

    def close(self, s: Snapshot) -> None:
        self.draw(s)
        self.bar.close()
        print(final_line(s), file=self.file, flush=True)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Notebook, VS Code, Colab)."""
    module = sys.modules.get("IPython")
    if module is None:
        return False
    ip = module.get_ipython()
    return ip is not None and any(c.__name__ == "ZMQInteractiveShell" for c in type(ip).__mro__)


def has_widgets() -> bool:
    try:
        importlib.import_module("ipywidgets")
    except ImportError:
        return False
    return True


def choose(progress: object) -> Mode:
    """Which view `progress` ("auto", True, False) gets here."""
    if progress is False or progress is None:
        return "none"
    if in_notebook() and has_widgets():
        return "widget"
    if progress == "auto":
        return "text" if in_notebook() or sys.stderr.isatty() else "none"
    return "text"


def wanted(progress: object) -> bool:
    """Whether anything is drawn for `progress` here."""
    return choose(progress) != "none"


def make_view(mode: Mode, m: Metrics) -> View | None:
    """The view for `mode`; a panel that cannot be shown falls back to text, and text
    that cannot be shown to nothing: drawing never stops a run."""
    if mode == "widget":
        try:
            from .panel import Panel

            return Panel(m.rows)
        except Exception:
            mode = "text"
    if mode == "text":
        try:
            return TextView(m.rows)
        except Exception:
            return None
    return None


async def _draw_loop(view: View, m: Metrics, meter: Meter) -> None:
    while True:
        meter.add(time.perf_counter(), m)
        try:
            view.draw(snapshot(m, meter))
        except Exception:  # a broken display must never break the run
            return
        await asyncio.sleep(INTERVAL_S)


def _stop(task: asyncio.Task[None]) -> None:
    """Cancel the draw loop without awaiting it (awaiting could swallow our own
    cancellation, or re-raise a KeyboardInterrupt that hit the loop)."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


@contextlib.asynccontextmanager
async def show(metrics: Metrics, progress: object) -> AsyncIterator[None]:
    """Draw `metrics` while the body runs; the final state stays on screen."""
    view = make_view(choose(progress), metrics)
    if view is None:
        yield
        return
    meter = Meter()
    task = asyncio.ensure_future(_draw_loop(view, metrics, meter))
    outcome: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        outcome = exc
        raise
    finally:
        _stop(task)
        with contextlib.suppress(Exception):
            view.close(snapshot(metrics, meter, outcome=outcome))
