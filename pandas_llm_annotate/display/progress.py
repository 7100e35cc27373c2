"""Progress only draws: a task that reads `Metrics` every half second and draws a view.

It never sits on the request path; requests only bump counters. Which view:

- in a Jupyter kernel (JupyterLab, Notebook, VS Code) with ipywidgets: a live panel
  (`panel.py`);
- `progress="auto"` elsewhere: a text bar on stderr when stderr is a terminal, else
  nothing; `progress=True`: the text bar anyway (also in a kernel without ipywidgets);
- `progress="summary"`: no live bar, only the final block on stderr (for logs);
- `progress=False`: nothing.

The last state stays on screen: after the body, the view draws once more with the
run's final status (`metrics.status`/`message`, set by the core before it leaves the
context; if it has not, the status is read from the exception that ends the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import time
from collections.abc import AsyncIterator
from typing import Literal, Protocol

from ..report.metrics import Metrics
from .snapshot import Meter, Snapshot, snapshot

INTERVAL_S = 0.5  # at most one draw per this many seconds
Mode = Literal["widget", "text", "summary", "none"]


class View(Protocol):
    def draw(self, s: Snapshot) -> None: ...

    def close(self, s: Snapshot) -> None: ...


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
    """Which view `progress` ("auto", "summary", True, False) gets here."""
    if progress is False or progress is None:
        return "none"
    if progress == "summary":
        return "summary"
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
    if mode in ("text", "summary"):
        try:
            from .text_bar import TextView

            return TextView(live=mode == "text")
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
