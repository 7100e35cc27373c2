"""The notebook front-end people use, for real: JupyterLab 4 in headless Chromium.

A small notebook (200 rows against the embedded simulator, then the run's report) is
opened in JupyterLab, all its cells are run from JupyterLab itself, and the page is
read back: the live panel must be a real widget (not "Error displaying widget", not
an `IntProgress(...)` text or the plain-text fallback) that reached its final state,
and the report's cards must not draw a label over its value, even at their minimum
width. Screenshots: `jupyterlab.png` and `report-narrow.png` in the fixture's folder.

Needs Debian's chromium and chromium-driver (`.ci/run` installs them) and the
`browser` extra (jupyterlab, selenium); else skipped, saying what to install.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pandas_llm_annotate.display.html import CARD_MIN_WIDTH
from tests.helpers import jupyter_lab as lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROWS = 200
LABELS = ["billing", "shipping", "other"]

# The open notebook once its kernel is idle and every code cell has run; null before.
CELLS_DONE = """
const app = window.jupyterapp, nb = app && app.shell.currentWidget;
const kernel = nb && nb.sessionContext && nb.sessionContext.session
    && nb.sessionContext.session.kernel;
if (!kernel || kernel.status !== 'idle' || !nb.context.isReady) return null;
const cells = nb.content.widgets.filter(c => c.model.type === 'code');
return arguments[0] ? cells.every(c => c.model.executionCount !== null) : cells.length;
"""

# What the page shows: each panel as rendered, and every output's text.
PAGE = """
const panels = [...document.querySelectorAll('.jp-OutputArea-output .pla-panel')];
return {
  panels: panels.map(p => {
    const bar = p.querySelector('.widget-hprogress .progress-bar');
    const html = [...p.querySelectorAll('.widget-html-content')].map(e => e.innerText);
    return {
      widget: p.classList.contains('jupyter-widgets') && p.classList.contains('widget-vbox'),
      header: html[0] || '', count: html[1] || '',
      barClass: bar ? bar.className : null,
      barFraction: bar ? bar.getBoundingClientRect().width
                         / bar.parentElement.getBoundingClientRect().width : null,
    };
  }),
  outputs: [...document.querySelectorAll('.jp-OutputArea-output')].map(o => ({
    mime: o.dataset.mimeType || '', text: o.innerText})),
  reports: document.querySelectorAll('.jp-OutputArea-output .pla-report').length,
};
"""

# Every pair of text boxes in a report card that overlap or touch on a line, and every
# text box that sticks out of its card's content box. Cards are the children of the report's grid.
CARD_CLASHES = """
const report = document.querySelector('.jp-OutputArea-output .pla-report');
const grid = [...report.querySelectorAll('div')].find(
    e => getComputedStyle(e).display === 'grid');
if (arguments[0]) grid.style.width = arguments[0] + 'px';
const problems = [], widths = [];
for (const card of grid.children) {
  const edge = card.getBoundingClientRect(), pad = getComputedStyle(card);
  widths.push(edge.width);
  const box = {left: edge.left + parseFloat(pad.paddingLeft),
               right: edge.right - parseFloat(pad.paddingRight)};
  const texts = [];
  const walk = document.createTreeWalker(card, NodeFilter.SHOW_TEXT);
  for (let node = walk.nextNode(); node; node = walk.nextNode()) {
    if (!node.textContent.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) texts.push({text: node.textContent, node, r});
  }
  for (const t of texts) {
    if (t.r.left < box.left - 0.5 || t.r.right > box.right + 0.5)
      problems.push(`'${t.text}' sticks out of its card`);
  }
  for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
    const a = texts[i], b = texts[j];
    if (a.node === b.node) continue;
    const sameLine = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top) > 2;
    const gap = Math.max(a.r.left, b.r.left) - Math.min(a.r.right, b.r.right);
    if (sameLine && gap < 4)
      problems.push(`'${a.text}' and '${b.text}' are ${gap.toFixed(1)} px apart`);
  }
}
return {problems, widths};
"""


def notebook(path: Path, cache: Path) -> None:
    import nbformat

    cells = [
        "import pandas as pd\n"
        "import pandas_llm_annotate as pla\n"
        "from pandas_llm_annotate.simulator import serve\n\n"
        "sim = serve(latency=0.05)\n"
        f"pla.configure(model='simulator', base_url=sim.base_url, cache={str(cache)!r})",
        f"df = pd.DataFrame({{'text': [f'message number {{i}}' for i in range({ROWS})]}})\n"
        f"df['label'] = df.llm.annotate('text', labels={LABELS!r})",
        "pla.last_report()",
        "sim.close()",
    ]
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """JupyterLab with the notebook run from the browser: (driver, folder of the PNGs)."""
    reason = lab.missing()
    if reason is not None:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("browser")
    root = base / "root"
    root.mkdir()
    notebook(root / "panel.ipynb", base / "cache")
    started = time.monotonic()
    with lab.jupyter_lab(root, base / "jupyter") as server, \
            lab.chromium(base / "chromium") as driver:
        driver.get(server.url("lab/tree/panel.ipynb"))
        lab.wait_for("the notebook and an idle kernel",
                     lambda: driver.execute_script(CELLS_DONE, False), 90, server.log_tail)
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        lab.wait_for("every cell to run", lambda: driver.execute_script(CELLS_DONE, True),
                     120, lambda: str(driver.execute_script(PAGE)) + "\n" + server.log_tail())
        driver.save_screenshot(str(base / "jupyterlab.png"))
        print(f"browser: notebook run in JupyterLab after {time.monotonic() - started:.1f} s;"
              f" screenshots in {base}")
        yield driver, base


def final_panel(driver: Any) -> dict[str, Any]:
    """The one panel, once its header has left "annotating" (the last draw can trail
    the kernel's idle message by a moment)."""
    def settled() -> dict[str, Any] | None:
        shown = driver.execute_script(PAGE)["panels"]
        return shown[0] if len(shown) == 1 and "annotating" not in shown[0]["header"] else None

    return lab.wait_for("one panel in its final state", settled, 15,
                        lambda: str(driver.execute_script(PAGE)))


def test_panel_is_a_widget_that_finished(page: tuple[Any, Path]) -> None:
    driver, _ = page
    panel = final_panel(driver)
    assert panel["widget"], f"the panel is not a rendered widget: {panel}"
    assert "finished" in panel["header"], panel
    assert f"{ROWS} / {ROWS} rows" in panel["count"].replace(",", ""), panel
    assert "progress-bar-success" in panel["barClass"], panel
    assert panel["barFraction"] > 0.995, f"the bar is not full: {panel}"


def test_no_widget_error_or_text_fallback(page: tuple[Any, Path]) -> None:
    driver, _ = page
    final_panel(driver)
    shown = driver.execute_script(PAGE)
    texts = [o["text"] for o in shown["outputs"]]
    for bad in ("Error displaying widget", "IntProgress(", "VBox(", "live progress panel",
                "Traceback", "Warning"):
        assert not any(bad in text for text in texts), (bad, texts)
    assert not [o for o in shown["outputs"] if o["mime"].endswith("stderr")], texts
    assert shown["reports"] == 1, "last_report() shows the report's HTML"


@pytest.mark.parametrize("width", [None, CARD_MIN_WIDTH], ids=["as shown", "min width"])
def test_report_cards_do_not_overlap(page: tuple[Any, Path], width: int | None) -> None:
    """Issue 13: "answer format" was drawn over its value (`json_schema`)."""
    driver, base = page
    found = driver.execute_script(CARD_CLASHES, width)
    if width is not None:
        report = driver.find_element("css selector", ".jp-OutputArea-output .pla-report")
        report.screenshot(str(base / "report-narrow.png"))
        assert all(abs(w - width) < 1 for w in found["widths"]), found["widths"]
    assert not found["problems"], found["problems"]
