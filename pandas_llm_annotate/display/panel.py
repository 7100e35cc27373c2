"""The live notebook panel: ipywidgets fed by `progress.py`'s draw loop, twice a second.

A header with the status, a progress bar with done/total rows, and tiles: rows/s,
ETA, requests in flight against the limiter's window, p50/p95 latency, time to first
token, 429s, retries, errors; then the calls saved (dedupe, exact cache, semantic
cache) and the tokens with their cost where the price is known.

The widgets only ever change on the event loop's thread, from the draw loop (never
from a request). When the run ends the panel stays, with the final status and its
reason; its display is updated to carry a static HTML copy too, so a notebook opened
without a kernel or widget state (nbconvert, GitHub) still shows the final panel.
"""

from __future__ import annotations

import html
from typing import Any

from .fmt import fmt_rate, fmt_s
from .snapshot import Snapshot, batch_text, cost_text, limit_text
from .text_layout import final_block

COLORS = {"running": "#1976d2", "finished": "#2e7d32", "interrupted": "#ef6c00",
          "budget": "#ef6c00", "failed": "#c62828"}
SYMBOLS = {"running": "●", "finished": "✓", "interrupted": "■", "budget": "$", "failed": "✗"}
BAR_STYLES = {"running": "", "finished": "success", "interrupted": "warning", "budget": "warning",
              "failed": "danger"}
FONT = "font-family: var(--jp-ui-font-family, system-ui, -apple-system, sans-serif);"
MUTED = "opacity: .65;"
TEXT_WIDTH = 100  # columns of the final panel's plain-text form


def header_html(s: Snapshot) -> str:
    color, symbol = COLORS.get(s.status, "#555"), SYMBOLS.get(s.status, "●")
    what = "annotating" if s.status == "running" else f"{s.status} in {fmt_s(s.elapsed)}"
    model = f" <span style='{MUTED}'>· {html.escape(s.model)}</span>" if s.model else ""
    reason = ""
    if s.message:
        reason = (f"<div style='color:{color}; margin-top:2px'>{html.escape(s.message)}</div>")
    return (f"<div style='{FONT} font-size:13px'><b style='color:{color}'>{symbol} {what}</b>"
            f"{model}{reason}</div>")


def count_html(s: Snapshot) -> str:
    pct = f"{100 * s.fraction:.0f}%"
    return (f"<div style='{FONT} font-size:13px; white-space:nowrap'>"
            f"<b>{s.done:,}</b> / {s.rows:,} rows <span style='{MUTED}'>· {pct}</span></div>")


def _tile(label: str, value: str) -> str:
    return (f"<div style='padding:2px 9px; border-radius:6px; background:rgba(127,127,127,.09)'>"
            f"<div style='font-size:10.5px; line-height:1.3; {MUTED}'>{label}</div>"
            f"<div style='font-size:14px; line-height:1.35; font-weight:600'>{value}"
            f"</div></div>")


def tiles_html(s: Snapshot) -> str:
    eta = "—" if s.status != "running" else ("0 s" if s.done >= s.rows else fmt_s(s.eta))
    latency = "—" if s.p50 is None else f"{fmt_s(s.p50)[:-2]} / {fmt_s(s.p95)}"
    tiles = [
        _tile("rows/s", fmt_rate(s.rate)),
        _tile("ETA", eta),
        _tile("in flight / limit", limit_text(s)),
        _tile("latency p50 / p95", latency),
        _tile("first token p50", fmt_s(s.ttft_p50)),
        _tile("429s", f"{s.rate_limited:,}"),
        _tile("retries", f"{s.retries:,}"),
        _tile("errors", f"{s.errors:,}"),
    ]
    saved = (f"saved <b>{s.saved_dedupe:,}</b> calls by dedupe · <b>{s.saved_cache:,}</b> by "
             f"exact cache · <b>{s.saved_semantic:,}</b> by semantic cache")
    tokens = (f"{s.requests:,} requests · tokens <b>{s.prompt_tokens:,}</b> in / "
              f"<b>{s.completion_tokens:,}</b> out · cost <b>{cost_text(s)}</b>")
    return (f"<div style='{FONT} font-size:12.5px; line-height:1.5'>"
            f"<div style='display:flex; flex-wrap:wrap; gap:6px; margin:2px 0 6px'>"
            f"{''.join(tiles)}</div>{batches_html(s)}"
            f"<div>{saved}</div><div>{tokens}</div></div>")


def batches_html(s: Snapshot, most: int = 6) -> str:
    """A line per batch (the last `most`): id, status, requests done of total, failed."""
    if not s.batches:
        return ""
    lines = [f"<div class='pla-batch'>{html.escape(batch_text(b))}</div>"
             for b in s.batches[-most:]]
    more = len(s.batches) - len(lines)
    if more:
        lines.insert(0, f"<div style='{MUTED}'>… {more} earlier batches</div>")
    return f"<div style='margin-bottom:4px'><b>Batch API</b>{''.join(lines)}</div>"


def static_html(s: Snapshot) -> str:
    """The whole panel as plain HTML (no widgets): the fallback of the final display."""
    color = COLORS.get(s.status, "#555")
    bar = (f"<div style='flex:1; height:14px; border-radius:3px; "
           f"background:rgba(127,127,127,.2); overflow:hidden'>"
           f"<div style='width:{100 * s.fraction:.1f}%; height:100%; background:{color}'>"
           f"</div></div>")
    return (f"<div class='pla-panel' style='border:1px solid rgba(127,127,127,.3); "
            f"border-radius:8px; padding:8px 12px; max-width:860px'>{header_html(s)}"
            f"<div style='display:flex; align-items:center; gap:10px; margin:6px 0'>"
            f"{bar}{count_html(s)}</div>{tiles_html(s)}</div>")


class Panel:
    """The ipywidgets view of a run; `draw` and `close` take a `progress.Snapshot`."""

    def __init__(self, total: int) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.header = w.HTML()
        self.bar = w.IntProgress(value=0, min=0, max=max(total, 1),
                                 layout=w.Layout(flex="1 1 auto", width="auto"))
        self.count = w.HTML()
        self.tiles = w.HTML()
        self.box = w.VBox(
            [self.header, w.HBox([self.bar, self.count],
                                 layout=w.Layout(align_items="center", grid_gap="10px")),
             self.tiles],
            layout=w.Layout(border="1px solid rgba(127,127,127,.3)", padding="4px 12px",
                            max_width="860px"),
        )
        self.box.add_class("pla-panel")
        show: Any = display  # untyped in IPython
        self.handle: Any = show(self._bundle(None), raw=True, display_id=True)

    def _bundle(self, final: Snapshot | None) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.box._repr_mimebundle_())
        if final is None:
            data["text/plain"] = "annotate: live progress panel (needs ipywidgets in the front-end)"
        else:
            data["text/plain"] = "\n".join(final_block(final, TEXT_WIDTH))
            data["text/html"] = static_html(final)
        return data

    def draw(self, s: Snapshot) -> None:
        self.header.value = header_html(s)
        if s.rows:
            self.bar.value = min(s.done, self.bar.max)
        else:  # nothing to do: full once over
            self.bar.value = 0 if s.status == "running" else self.bar.max
        self.bar.bar_style = BAR_STYLES.get(s.status, "")
        self.count.value = count_html(s)
        self.tiles.value = tiles_html(s)

    def close(self, s: Snapshot) -> None:
        self.draw(s)
        if self.handle is not None:
            self.handle.update(self._bundle(s), raw=True)
