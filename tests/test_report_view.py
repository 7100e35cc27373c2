"""The report in a notebook: HTML, the chart, the failures table; prices; JSON stays JSON."""

from __future__ import annotations

import base64
import json
import re
import sys
from typing import Any

import pandas as pd
import pytest

import pandas_llm_annotate as pla
from pandas_llm_annotate.display import html as report_view
from pandas_llm_annotate.report.metrics import Metrics
from pandas_llm_annotate.report.pricing import PRICES, cost_usd, price_of
from pandas_llm_annotate.report.report import FAILURE_COLUMNS, Report


def report(failed: int = 0, *, answered: bool = True, **kw: Any) -> Report:
    m = Metrics(rows=1000, missing=3, distinct=600, pieces=640, cache_hits=40, requests=620,
                retries=30, rate_limited=12, rows_done=1000, prompt_tokens=50_000,
                completion_tokens=4_000, model="gpt-4o-mini")
    if answered:
        m.latencies.extend(0.1 + 0.01 * (i % 40) for i in range(600))
        m.answered_at.extend(0.02 * i for i in range(600))
        m.limited_at.extend([0.5, 0.6, 3.0])
    for k, v in kw.items():
        setattr(m, k, v)
    m.finish("finished")
    failures = pd.DataFrame(
        {"index": list(range(failed)), "text": [f"<b>text {i}</b>" for i in range(failed)],
         "error": ["answer is not one of the labels"] * failed,
         "raw_answer": ["banana"] * failed},
        columns=FAILURE_COLUMNS)
    return Report.from_metrics(m, failures)


def card_line(label: str, value: str) -> str:
    """A pattern for one label and its value in a report card."""
    return rf">{re.escape(label)}</span> <span[^>]*>{re.escape(value)}</span>"


def test_html_has_the_numbers_chart_and_first_failures() -> None:
    html = report(failed=25)._repr_html_()
    assert "pla-report" in html and "finished" in html and "gpt-4o-mini" in html
    for label, value in [("distinct texts", "600"), ("429s", "12"), ("retries", "30"),
                         ("by dedupe", "397"), ("by exact cache", "40"), ("failed", "25"),
                         ("prompt", "50,000"), ("cost", "$0.0099")]:
        assert re.search(card_line(label, value), html), label
    png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert png is not None and base64.b64decode(png.group(1)).startswith(b"\x89PNG")
    assert html.count("banana") == report_view.FAILURE_ROWS  # the first rows only
    assert "and 15 more" in html
    assert "<b>text 0</b>" not in html and "&lt;b&gt;text 0&lt;/b&gt;" in html


def test_html_without_answers_or_failures() -> None:
    html = report(answered=False)._repr_html_()
    assert "no chart" in html and "<img" not in html and "Failures" not in html


def test_plot_draws_latency_and_answers_over_time() -> None:
    fig = report().plot(bins=20)
    left, right = fig.axes
    assert sum(p.get_height() for p in left.patches) == 600  # one count per answer
    assert "latency" in left.get_title() and "answers over time" in right.get_title()
    heights = [p.get_height() for p in right.patches]
    assert any(h < 0 for h in heights)  # the 429s, below the axis
    assert sum(h for h in heights if h > 0) * report_view._bin_width(12) == pytest.approx(600)


def test_without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    rep = report()
    assert "pip install matplotlib" in rep._repr_html_()
    with pytest.raises(ImportError, match="pip install matplotlib"):
        rep.plot()


def test_to_dict_stays_json_without_the_raw_series() -> None:
    data = report(failed=2).to_dict()
    text = json.dumps(data)
    assert "latencies" not in data and "answered_at" not in data and "limited_at" not in data
    assert data["model"] == "gpt-4o-mini" and data["cost_usd"] == pytest.approx(0.0099)
    assert len(data["failures"]) == 2 and "banana" in text


def test_a_real_run_renders(opts: dict[str, Any]) -> None:
    pd.Series(["I lost my card", "refund", "I lost my card"]).llm.annotate(**opts)
    rep = pla.last_report()
    assert rep is not None and len(rep.latencies) == 2 == len(rep.answered_at)
    assert "data:image/png" in rep._repr_html_()


@pytest.mark.parametrize(("model", "price"), [
    ("gpt-4o-mini", (0.15, 0.60)), ("gpt-4o-mini-2024-07-18", (0.15, 0.60)),
    ("openai/gpt-4o", (2.50, 10.00)), ("claude-3-5-haiku-latest", (0.80, 4.00)),
    ("claude-sonnet-4-20250514", (3.00, 15.00)), ("GPT-4.1-nano", (0.10, 0.40)),
    ("gpt-4o-audio-preview", None), ("simulator", None), ("", None), (None, None),
])
def test_price_of(model: str | None, price: tuple[float, float] | None) -> None:
    assert price_of(model) == price


def test_cost() -> None:
    assert cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd("unknown", 10, 10) is None
    assert cost_usd("unknown", 1_000_000, 0, price=(2.0, 8.0)) == pytest.approx(2.0)
    assert all(a < b for a, b in PRICES.values())  # output tokens cost more, everywhere


def test_semantic_hits_table() -> None:
    from pandas_llm_annotate.report.report import SEMANTIC_HIT_COLUMNS

    m = Metrics(rows=3, distinct=3, pieces=3, semantic_hits=1)
    m.finish("finished")
    hits = pd.DataFrame([[2, "lost my card!", "I lost my card", 0.9712, "card_lost"]],
                        columns=SEMANTIC_HIT_COLUMNS)
    html = Report.from_metrics(m, semantic_hits=hits)._repr_html_()
    assert "Semantic cache hits" in html and "0.971" in html and "lost my card!" in html
    assert re.search(card_line("by semantic cache", "1"), html)
