"""The ipywidgets panel, outside a kernel: what it shows while running and at the end."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pandas_llm_annotate.display import progress
from pandas_llm_annotate.display.snapshot import snapshot
from pandas_llm_annotate.report.metrics import Metrics

pytest.importorskip("ipywidgets", reason="ipywidgets is not installed (pip install -e .[notebook])")

from pandas_llm_annotate.display.panel import Panel, static_html

LABELS = ["card_lost", "refund", "other"]


def running() -> Metrics:
    m = Metrics(rows=1000, missing=0, distinct=600, cache_hits=100, rows_done=420,
                requests=350, retries=3, rate_limited=2, errors=3, in_flight=12, window=48,
                prompt_tokens=20_000, completion_tokens=1_000, model="gpt-4o-mini")
    m.latencies.extend([0.2] * 50 + [0.5] * 5)
    return m


def test_panel_draws_the_numbers() -> None:
    panel = Panel(1000)
    panel.draw(snapshot(running()))
    assert (panel.bar.value, panel.bar.max, panel.bar.bar_style) == (420, 1000, "")
    assert "<b>420</b> / 1,000 rows" in panel.count.value
    tiles = panel.tiles.value
    for text in ("12 / 48", "0.200 / 0.500 s", "400</b> calls by dedupe", "100</b> by exact cache",
                 "tokens <b>20,000</b> in", "$0.0036", "429s"):
        assert text in tiles, text
    assert "annotating" in panel.header.value and "gpt-4o-mini" in panel.header.value


@pytest.mark.parametrize(("status", "style"), [
    ("finished", "success"), ("interrupted", "warning"), ("failed", "danger")])
def test_panel_final_state_stays_with_its_reason(status: str, style: str) -> None:
    m = running()
    m.finish(status, "" if status == "finished" else f"{status}: <why>")
    panel = Panel(1000)
    panel.close(snapshot(m, outcome=None))
    assert panel.bar.bar_style == style
    assert status in panel.header.value
    if status != "finished":
        assert f"{status}: &lt;why&gt;" in panel.header.value  # escaped
    bundle = panel._bundle(snapshot(m, outcome=None))
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "pla-panel" in bundle["text/html"] and status in bundle["text/plain"]


def test_static_html_escapes_and_fills_the_bar() -> None:
    m = running()
    m.finish("failed", "<script>alert(1)</script>")
    html = static_html(snapshot(m))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "width:42.0%" in html


def test_empty_run_shows_a_full_bar_when_over() -> None:
    panel = Panel(0)
    m = Metrics(rows=0)
    panel.draw(snapshot(m))
    assert panel.bar.value == 0
    m.finish("finished")
    panel.close(snapshot(m))
    assert panel.bar.value == panel.bar.max


def test_a_run_with_the_panel(monkeypatch: pytest.MonkeyPatch, opts: dict[str, Any]) -> None:
    """`progress="auto"` in a notebook: the panel follows the run to its last row."""
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    made: list[Panel] = []
    real = progress.make_view

    def spy(mode: progress.Mode, m: Metrics) -> Any:
        view = real(mode, m)
        made.append(view)  # type: ignore[arg-type]
        return view

    monkeypatch.setattr(progress, "make_view", spy)
    texts = pd.Series(["I lost my card", "refund please", "I lost my card", None] * 5)
    texts.llm.annotate(labels=LABELS, **{**opts, "progress": "auto"})
    (panel,) = made
    assert isinstance(panel, Panel)
    assert (panel.bar.value, panel.bar.max, panel.bar.bar_style) == (20, 20, "success")
    assert "finished" in panel.header.value
    assert "13</b> calls by dedupe" in panel.tiles.value  # 20 rows − 5 missing − 2 distinct
