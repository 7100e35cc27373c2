"""Progress only draws: a task that reads `Metrics` every half second and updates a bar.

It never sits on the request path; requests only bump counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from .metrics import Metrics

INTERVAL_S = 0.5


def wanted(progress: object) -> bool:
    """`"auto"` shows a bar in a terminal or a notebook, nothing in pipes and CI."""
    if progress == "auto":
        return _in_notebook() or sys.stderr.isatty()
    return bool(progress)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="row", desc="annotate", dynamic_ncols=True, leave=True)


def _draw(bar: Any, m: Metrics) -> None:
    bar.n = m.rows_done
    bar.set_postfix_str(
        f"req={m.requests} retry={m.retries} 429={m.rate_limited} "
        f"in_flight={m.in_flight} failed={len(m.failures)}",
        refresh=False,
    )
    bar.refresh()


@contextlib.asynccontextmanager
async def show(metrics: Metrics, progress: object) -> AsyncIterator[None]:
    """Draw `metrics` while the body runs; the last state stays on screen."""
    if not wanted(progress):
        yield
        return
    bar = _bar(metrics.rows)

    async def loop() -> None:
        while True:
            _draw(bar, metrics)
            await asyncio.sleep(INTERVAL_S)

    task = asyncio.ensure_future(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        _draw(bar, metrics)
        bar.close()
