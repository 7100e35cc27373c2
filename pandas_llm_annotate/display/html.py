"""How a `Report` looks in a notebook: HTML with the numbers, a chart, the failures.

`to_html(report)` is `Report._repr_html_`; `plot(report)` is `Report.plot()`, a
matplotlib Figure with the latency histogram (p50/p95 marked) and the answers per
second over the run (429s marked). matplotlib is optional: without it the HTML has
the numbers and the failures, and `plot()` says what to install.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import pandas as pd

from ..report.estimate import Estimate
from ..report.report import Report, set_view
from .fmt import fmt_cost, fmt_rate, fmt_s
from .panel import COLORS, FONT, MUTED, SYMBOLS

FAILURE_ROWS = 10  # rows of the failures table shown in the HTML
LATENCY_COLOR = "#1976d2"
ANSWER_COLOR = "#5c9bd5"
LIMIT_COLOR = "#c62828"
CARD_MIN_WIDTH = 185  # px: the report's cards share a row down to this width each


def _n(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
    return f"{text}{unit}"


def groups(r: Report) -> dict[str, list[tuple[str, str]]]:
    """The numbers of a report, by topic, as display strings."""
    return {
        "Rows": [("rows", _n(r.rows)), ("missing cells", _n(r.missing)),
                 ("distinct texts", _n(r.distinct)), ("pieces (chunks)", _n(r.chunks)),
                 ("rows/s", fmt_rate(r.rows_per_s)), ("failed", _n(r.failed))],
        "Requests": [("sent", _n(r.requests)), ("retries", _n(r.retries)),
                     ("429s", _n(r.rate_limited)), ("max in flight", _n(r.max_in_flight)),
                     ("rows per request", _n(r.rows_per_request)),
                     ("answer format", html.escape(r.answer_format) or "—")],
        "Saved": [("calls saved", _n(r.calls_saved)), ("by dedupe", _n(r.saved_by_dedupe)),
                  ("by exact cache", _n(r.cache_hits)),
                  ("by semantic cache", _n(r.semantic_hit_count)),
                  ("asked again", _n(r.reasked))],
        "Latency": [("p50", fmt_s(r.p50_s)), ("p95", fmt_s(r.p95_s)), ("p99", fmt_s(r.p99_s)),
                    ("first token p50", fmt_s(r.ttft_p50_s)), ("elapsed", fmt_s(r.elapsed_s))],
        "Tokens": [("prompt", _n(r.prompt_tokens)), ("completion", _n(r.completion_tokens)),
                   ("per row", _n(r.tokens_per_row)), ("cost", fmt_cost(r.cost_usd))],
    }


def rows_text(r: Report) -> str:
    """`1,000 rows`, or `228 of 1,000 rows answered` when some have no answer."""
    asked = r.rows - r.missing
    if r.answered == asked:
        return f"{r.rows:,} rows"
    return f"{r.answered:,} of {asked:,} rows answered"


def _card(title: str, rows: list[tuple[str, str]]) -> str:
    """A titled box of label/value lines. Each line is a wrapping flex row, not a table
    (a front-end's table CSS could draw a long label over its value): the value stays
    right of its label while both fit, else takes the next line, right-aligned, and a
    long word breaks rather than leave the card. Without CSS: "label value" lines."""
    body = "".join(
        f"<div style='display:flex; flex-wrap:wrap; column-gap:10px'>"
        f"<span style='{MUTED} white-space:nowrap'>{k}</span> "
        f"<span style='margin-left:auto; min-width:0; text-align:right; font-weight:600; "
        f"overflow-wrap:anywhere'>{v}</span></div>"
        for k, v in rows
    )
    return (f"<div style='padding:6px 10px; border-radius:6px; background:rgba(127,127,127,.08)'>"
            f"<div style='font-weight:600; margin-bottom:2px'>{title}</div>"
            f"<div style='font-size:12.5px; line-height:1.4'>{body}</div></div>")


def _header(r: Report) -> str:
    color, symbol = COLORS.get(r.status, "#555"), SYMBOLS.get(r.status, "●")
    model = f" <span style='{MUTED}'>· {html.escape(r.model)}</span>" if r.model else ""
    line = (f"<b style='color:{color}'>{symbol} {html.escape(r.status)}</b>: "
            f"{rows_text(r)} in {fmt_s(r.elapsed_s)} · {r.requests:,} requests · "
            f"{r.calls_saved:,} calls saved · {r.failed:,} failed{model}")
    message = (f"<div style='color:{color}'>{html.escape(r.message)}</div>"
               if r.message else "")
    return f"<div style='font-size:14px; margin-bottom:6px'>{line}{message}</div>"


def _table(table: pd.DataFrame, title: str, what: str, attribute: str,
           limit: int = FAILURE_ROWS) -> str:
    """The first rows of `table`, under a title that says how many there are."""
    if table.empty:
        return ""
    shown = table.head(limit).to_html(index=False, escape=True, na_rep="—", border=0,
                                      float_format="{:.3f}".format)
    shown = shown.replace("<td>", "<td style='text-align:left'>").replace(
        "<th>", "<th style='text-align:left'>")
    more = len(table) - limit
    tail = (f"<div style='{MUTED}'>… and {more:,} more: <code>report.{attribute}</code></div>"
            if more > 0 else "")
    return (f"<details open style='margin-top:8px'><summary><b>{title}</b> "
            f"({len(table):,} {what})</summary>{shown}{tail}</details>")


def failures_html(r: Report, limit: int = FAILURE_ROWS) -> str:
    what = ("wrong fields or rows without an answer" if "field" in r.failures
            else "rows without an answer")
    return _table(r.failures, "Failures", what, "failures", limit)


def semantic_html(r: Report, limit: int = FAILURE_ROWS) -> str:
    return _table(r.semantic_hits, "Semantic cache hits",
                  "rows answered from a near-identical text", "semantic_hits", limit)


def servers_html(r: Report) -> str:
    """Several servers: what each took (requests, answers, errors, p50, share)."""
    table = pd.DataFrame([{"server": name, **numbers} for name, numbers in r.servers.items()])
    return _table(table, "Servers", "servers", "servers")


def chart_html(r: Report) -> str:
    if not r.latencies:
        why = ("everything came from dedupe and the cache" if r.status == "finished"
               and not r.failed else f"the run {r.status} before any answer")
        return (f"<div style='{MUTED} margin-top:6px'>No requests answered in this run "
                f"({why}): no chart.</div>")
    try:
        fig = plot(r)
    except ImportError:
        return (f"<div style='{MUTED} margin-top:6px'>pip install matplotlib "
                "(or pandas-llm-annotate[notebook]) for the latency chart.</div>")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (f"<img alt='latency histogram and answers over time' style='max-width:100%; "
            f"margin-top:6px' src='data:image/png;base64,{data}'/>")


def to_html(r: Report) -> str:
    """The report as HTML: status, numbers by topic, chart, first failures."""
    cards = "".join(_card(title, rows) for title, rows in groups(r).items())
    columns = f"repeat(auto-fill, minmax({CARD_MIN_WIDTH}px, 1fr))"
    return (f"<div class='pla-report' style='{FONT} font-size:13px; max-width:960px'>"
            f"{_header(r)}<div style='display:grid; gap:8px; grid-template-columns:{columns}'>"
            f"{cards}</div>"
            f"{chart_html(r)}{servers_html(r)}{failures_html(r)}"
            f"{semantic_html(r)}</div>")


def _figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("Report.plot() needs matplotlib: pip install matplotlib "
                          "(or pandas-llm-annotate[notebook]).") from exc
    _notebook_shows_figures(Figure)
    return Figure(figsize=(9.6, 3.0), layout="constrained")


def _notebook_shows_figures(figure_class: type) -> None:
    """In IPython, let a returned Figure display as a PNG even when pyplot (which
    sets this up) was never imported; a no-op elsewhere or when already set."""
    import sys

    module = sys.modules.get("IPython")
    ip = module.get_ipython() if module is not None else None
    if ip is None:
        return
    png = ip.display_formatter.formatters.get("image/png")
    try:
        png.lookup_by_type(figure_class)
    except KeyError:
        from IPython.core import pylabtools

        print_figure: Any = pylabtools.print_figure  # untyped in IPython
        png.for_type(figure_class, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


def plot(r: Report, *, bins: int = 40) -> Any:
    """A matplotlib Figure: latency histogram, and answers per second over the run.

    Drawn without pyplot (no global state, any thread); a notebook shows the returned
    figure, a script saves it with `fig.savefig("run.png")`.
    """
    fig = _figure()
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.4])
    lat = np.asarray(r.latencies, dtype=float)
    if lat.size:
        left.hist(lat, bins=bins, color=LATENCY_COLOR, alpha=0.8)
        for q, style in ((50, "-"), (95, "--")):
            value = float(np.percentile(lat, q))
            left.axvline(value, color="#333", linestyle=style, linewidth=1,
                         label=f"p{q} {fmt_s(value)}")
        left.legend(frameon=False, fontsize=8)
    left.set_title(f"latency of {lat.size:,} answers", fontsize=10)
    left.set_xlabel("seconds", fontsize=9)
    left.set_ylabel("answers", fontsize=9)

    times = np.asarray(r.answered_at, dtype=float)
    end = max(float(r.elapsed_s), float(times.max()) if times.size else 0.0, 1e-3)
    width = _bin_width(end)
    edges = np.arange(0.0, end + width, width)
    counts, _ = np.histogram(times, bins=edges)
    right.bar(edges[:-1], counts / width, width=width, align="edge", color=ANSWER_COLOR,
              alpha=0.85, label="answers/s")
    if r.limited_at:
        limited, _ = np.histogram(np.asarray(r.limited_at), bins=edges)
        right.bar(edges[:-1], -limited / width, width=width, align="edge", color=LIMIT_COLOR,
                  alpha=0.85, label="429s/s")
        right.axhline(0, color="#333", linewidth=0.6)
    right.legend(frameon=False, fontsize=8, loc="upper right")
    right.set_title(f"answers over time ({r.requests:,} requests, "
                    f"{r.rate_limited:,} × 429)", fontsize=10)
    right.set_xlabel("seconds since start", fontsize=9)
    right.set_ylabel("per second", fontsize=9)
    for ax in (left, right):
        ax.tick_params(labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    return fig


def _bin_width(seconds: float) -> float:
    """About 60 bars over the run, on a round width."""
    for width in (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if seconds / width <= 60:
            return float(width)
    return seconds / 60


def estimate_html(e: Estimate) -> str:
    """An `Estimate` as a notebook shows it: one card of numbers."""
    rows = [("rows", _n(e.rows)), ("missing cells", _n(e.missing)),
            ("distinct texts", _n(e.distinct)), ("pieces (chunks)", _n(e.pieces)),
            ("already in the cache", _n(e.cached)), ("to ask", _n(e.to_ask)),
            ("rows per request", _n(e.rows_per_request)), ("requests", _n(e.requests)),
            ("prompt tokens", f"~{e.prompt_tokens:,}"),
            ("completion tokens", f"~{e.completion_tokens:,} (at most "
                                  f"{e.completion_tokens_max:,})"),
            ("cost (batch price)" if e.batch else "cost", fmt_cost(e.cost_usd)),
            ("cost at most", fmt_cost(e.cost_usd_max)),
            ("batch cost", fmt_cost(e.batch_cost_usd)),
            ("wall time", (e.wall_basis if e.batch else "—") if e.wall_s is None
             else f"{fmt_s(e.wall_s)} ({e.wall_basis})")]
    calibrated = (f"tokens calibrated from {e.calibrated_from:,} earlier answers"
                  if e.calibrated_from else "tokens estimated (no earlier answers to learn from)")
    return (f"<div class='pla-estimate' style='{FONT} font-size:13px; max-width:520px'>"
            f"<div style='font-size:14px; margin-bottom:6px'><b>Estimate</b> · "
            f"{html.escape(e.model)} <span style='{MUTED}'>· no request sent · "
            f"{calibrated}</span></div>{_card('Before the run', rows)}</div>")


set_view(html=to_html, plot=plot, estimate_html=estimate_html)
