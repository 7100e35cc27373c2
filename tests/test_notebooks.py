"""Every notebook in notebooks/ runs top to bottom in a real kernel (nbclient), with no key
and no network; the saved outputs and widget state say what a user saw. One of them is
exported to HTML with its widget state and rendered in headless Chromium."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
SECONDS = 30  # a notebook must run in less than this

for module in ("nbclient", "nbformat", "ipykernel", "ipywidgets"):
    pytest.importorskip(module,
                        reason=f"{module} is not installed (pip install -e .[dev,notebook])")


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("render_notebook",
                                                  ROOT / "scripts" / "render_notebook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_notebook", module)
    spec.loader.exec_module(module)
    return module


render = _render_module()
WIDGET_JS = render.find_widget_js()  # read before the tests move XDG_CACHE_HOME
_executed: dict[str, Any] = {}


def executed(name: str) -> Any:
    """Each notebook is executed once per session, in place (cwd = notebooks/)."""
    if name not in _executed:
        _executed[name] = render.execute(NOTEBOOKS / name, timeout=120)
    return _executed[name]


def outputs(nb: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            yield i, output


def stdout(nb: Any) -> str:
    return "".join(o.get("text", "") for _, o in outputs(nb)
                   if o["output_type"] == "stream" and o["name"] == "stdout")


def panels(nb: Any) -> list[dict[str, Any]]:
    """The progress bar's saved state of each panel, in the order shown."""
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]

    def model(ref: str) -> dict[str, Any]:
        return state[ref.removeprefix("IPY_MODEL_")]  # type: ignore[no-any-return]

    found = []
    for _, output in outputs(nb):
        view = output.get("data", {}).get(WIDGET_VIEW)
        if view is None:
            continue
        box = state[view["model_id"]]
        assert box["model_name"] == "VBoxModel"
        row = model(box["state"]["children"][1])
        bar = model(row["state"]["children"][0])
        assert bar["model_name"] == "IntProgressModel"
        assert "pla-panel" in output["data"]["text/html"]  # the static copy of the final state
        found.append(bar["state"])
    return found


def report_htmls(nb: Any) -> list[str]:
    return [o["data"]["text/html"] for _, o in outputs(nb)
            if o["output_type"] == "execute_result" and "pla-report" in
            o.get("data", {}).get("text/html", "")]


def check_common(nb: Any) -> None:
    errors = [o for _, o in outputs(nb) if o["output_type"] == "error"]
    assert not errors, errors
    assert nb.metadata["pla"]["seconds"] < SECONDS
    stderr = "".join(o.get("text", "") for _, o in outputs(nb)
                     if o["output_type"] == "stream" and o["name"] == "stderr")
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr


def finished(bar: dict[str, Any], rows: int) -> bool:
    return (bar.get("value"), bar.get("max"), bar.get("bar_style")) == (rows, rows, "success")


def test_quick_start() -> None:
    nb = executed("01_quick_start.ipynb")
    check_common(nb)
    first, rerun = panels(nb)
    assert finished(first, 1000) and finished(rerun, 1000)  # final value = the row count
    (html,) = report_htmls(nb)
    assert "data:image/png;base64," in html and "1,000 rows" in html
    out = stdout(nb)
    assert "1,000 rows, 600 distinct texts" in out
    assert "600 cached, 0 requests" in out and "same answers: True" in out
    pngs = [o for _, o in outputs(nb) if "image/png" in o.get("data", {})]
    assert pngs, "report.plot() shows a figure"


def test_intent_labels() -> None:
    nb = executed("02_intent_labels.ipynb")
    check_common(nb)
    labeled, packed, flaky = panels(nb)
    assert finished(labeled, 1000) and finished(packed, 1000) and finished(flaky, 60)
    out = stdout(nb)
    assert re.search(r"agreement: \d+%", out)
    requests = int(re.search(r"(\d+) requests, (\d+) texts per request", out).group(1))  # type: ignore[union-attr]
    assert requests < 100  # packed: far fewer than 600
    missing = int(re.search(r"(\d+) of 60 rows without an answer", out).group(1))  # type: ignore[union-attr]
    reports = report_htmls(nb)
    assert len(reports) == 2
    if missing:
        assert "Failures" in reports[-1] and "HTTP 500" in reports[-1]


def test_chinese_reviews_chunking() -> None:
    nb = executed("03_chinese_reviews_chunking.ipynb")
    check_common(nb)
    out = stdout(nb)
    match = re.search(r"(\d+) reviews, (\d+) distinct -> (\d+) chunks asked in (\d+) requests",
                      out)
    assert match is not None
    rows, _, chunks, _ = map(int, match.groups())
    assert chunks > rows  # long reviews were split
    assert "lossless: True" in out
    (bar,) = panels(nb)
    assert finished(bar, rows)


def test_chinese_reviews_without_shared_data(tmp_path: Path) -> None:
    """Where ../shared is absent the notebook falls back to the shipped reviews."""
    copy = tmp_path / "nb" / "03_chinese_reviews_chunking.ipynb"
    copy.parent.mkdir()
    shutil.copy(NOTEBOOKS / copy.name, copy)
    nb = render.execute(copy, timeout=120)
    check_common(nb)
    out = stdout(nb)
    assert "shipped sample" in out and "60 reviews" in out
    (bar,) = panels(nb)
    assert finished(bar, 60)


def test_rate_limits() -> None:
    nb = executed("04_rate_limits.ipynb")
    check_common(nb)
    polite, terse, busy, interrupted, resumed = panels(nb)
    assert finished(polite, 200) and finished(terse, 200) and finished(busy, 100)
    assert interrupted["bar_style"] == "warning" and 0 < interrupted["value"] < 200
    assert finished(resumed, 200)
    htmls = [o["data"]["text/html"] for _, o in outputs(nb) if WIDGET_VIEW in o.get("data", {})]
    assert "interrupted" in htmls[3] and "cache" in htmls[3]
    out = stdout(nb)
    assert "interrupted: <Report interrupted" in out
    match = re.search(r"resumed: (\d+) answers from the cache, (\d+) new requests", out)
    assert match is not None and int(match.group(1)) > 0 and int(match.group(2)) < 170
    assert len(report_htmls(nb)) == 2


def test_cost_and_batch() -> None:
    nb = executed("06_cost_and_batch.ipynb")
    check_common(nb)
    batch, interrupted, resumed, cancelled, asked_again, capped, rest = panels(nb)
    for bar in (batch, resumed, asked_again, rest):
        assert finished(bar, 1000)
    assert interrupted["bar_style"] == cancelled["bar_style"] == capped["bar_style"] == "warning"
    htmls = [o["data"]["text/html"] for _, o in outputs(nb) if WIDGET_VIEW in o.get("data", {})]
    assert "Batch API" in htmls[0] and "completed 600/600 done" in htmls[0]
    assert "still running on the server" in htmls[1]
    out = stdout(nb)
    assert "requests sent so far: 0" in out  # estimates send nothing
    match = re.search(r"\$(\d+\.\d+) at the batch price, \$(\d+\.\d+) at the list price", out)
    assert match is not None
    assert float(match.group(1)) == pytest.approx(float(match.group(2)) / 2, abs=1e-4)
    assert "resumed 1 batch, submitted 0 new batches and 0 new requests; 1,000 rows" in out
    match = re.search(r"asked the rest in 1 new batch \((\d+) requests\); 1,000 rows answered; "
                      r"open batches left: 0", out)
    assert match is not None and 0 < int(match.group(1)) < 600
    cap = re.search(r"status 'budget': ([\d,]+) rows answered, (\d+) requests, \$(\d+\.\d+) "
                    r"spent of max_cost \$(\d+\.\d+)", out)
    assert cap is not None and 0 < int(cap.group(2)) < 600
    assert float(cap.group(3)) <= float(cap.group(4))  # the cap held
    assert "stopped at the budget" in out and "would cost about $" in out
    rest = re.search(r"rerun with max_cost=\$1: status 'finished', (\d+) new requests, "
                     r"1,000 rows answered", out)
    assert rest is not None and int(rest.group(1)) == 600 - int(cap.group(2))  # only the rest


def test_extract() -> None:
    nb = executed("05_extract.ipynb")
    check_common(nb)
    bars = panels(nb)
    assert len(bars) == 6 and all(finished(bar, rows) for bar, rows in
                                  zip(bars, [300, 300, 300, 300, 300, 300], strict=True))
    out = stdout(nb)
    assert "'amount': Float64Dtype()" in out and "'urgent': BooleanDtype" in out
    wrong = re.search(r"300 rows, 120 requests, (\d+) fields wrong in (\d+) rows, 0 rows", out)
    assert wrong is not None and int(wrong.group(1)) > 0
    rerun = re.search(r"rerun: (\d+) answers from the cache, (\d+) requests \((\d+) distinct", out)
    assert rerun is not None and int(rerun.group(2)) == int(rerun.group(3)) > 0
    assert int(rerun.group(1)) + int(rerun.group(2)) == 120
    packed = re.search(r"packed: (\d+) requests for 120 texts \((\d+) asked again alone\)", out)
    assert packed is not None and int(packed.group(1)) < 60 and int(packed.group(2)) > 0
    agree = re.search(r"labels alone (\d+)%, with definitions and examples (\d+)%", out)
    assert agree is not None and int(agree.group(2)) > int(agree.group(1))
    assert re.search(r"labels per row: \{0: \d+, 1: \d+, 2: \d+", out)
    (html,) = report_htmls(nb)
    assert "wrong fields or rows without an answer" in html and "not a number" in html


@pytest.mark.dask
def test_dask() -> None:
    pytest.importorskip("distributed", reason="pip install -e .[dask]")
    nb = executed("07_dask.ipynb")
    check_common(nb)
    out = stdout(nb)
    assert "10 partitions, object named 'text'" in out and "0 requests so far" in out
    assert "1,000 rows, 600 distinct, 600 requests, 429s: 0, failed: 0" in out
    assert "the server was asked 600 texts, each at most 1 time" in out
    assert "rerun: 0 requests; same answers: True" in out
    (html,) = report_htmls(nb)
    assert "1,000 rows" in html
    servers = [o["data"]["text/html"] for _, o in outputs(nb) if o["output_type"] ==
               "execute_result" and "share" in o.get("data", {}).get("text/html", "")]
    assert len(servers) == 1 and servers[0].count("http://127.0.0.1:") == 2


def test_every_notebook_is_tested() -> None:
    names = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    # real_llm: executed in tests/test_real_llm.py
    assert names == {"01_quick_start.ipynb", "02_intent_labels.ipynb",
                     "03_chinese_reviews_chunking.ipynb", "04_rate_limits.ipynb",
                     "05_extract.ipynb", "06_cost_and_batch.ipynb", "07_dask.ipynb",
                     "real_llm.ipynb"}  # real_llm: executed in tests/test_real_llm.py


def test_exported_html_renders_in_chromium(tmp_path: Path) -> None:
    """nbconvert (with widget state) -> HTML -> headless Chromium -> PNG with the panel."""
    pytest.importorskip("nbconvert", reason="nbconvert is not installed (pip install -e .[dev])")
    nb = executed("01_quick_start.ipynb")
    local = WIDGET_JS is not None
    html = render.export_html(nb, widgets="local" if local else "static", js=WIDGET_JS)
    assert "pla-report" in html
    if local:
        assert WIDGET_STATE in html and "embed-amd.js" in html
    chromium = render.find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium): HTML checked, no PNG")
    page, png = tmp_path / "quick_start.html", tmp_path / "quick_start.png"
    page.write_text(html, encoding="utf-8")
    render.screenshot(page, png, chromium=chromium, height=1400)
    image_module = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    import numpy as np

    pixels = np.asarray(image_module.open(png).convert("RGB")).astype(int)
    assert pixels.shape == (1400, 1200, 3)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    green = int(((g > 110) & (r < 90) & (b < 90) & (g - r > 50)).sum())
    assert green > 2000, "the finished panel's green progress bar is on the page"
    if local:  # the widgets themselves were built from the saved state, not the copies
        dom = render.dump_dom(page, chromium=chromium)
        assert dom.count("progress-bar-success") >= 2 and "1,000</b> / 1,000 rows" in dom
    else:
        pytest.skip("rendered the panels' static copies: run scripts/render_notebook.py "
                    "--fetch-widget-js to render the widgets themselves")
