"""Ctrl-C while a sync `annotate` runs inside `asyncio.run` (code that calls the sync API
from a coroutine): the first Ctrl-C stops the run at once, on both ways `run_sync` runs
inside a loop (nested with nest_asyncio2, or on a thread for loops it cannot patch)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.child import ctrl_c, interruptible, start

from pandas_llm_annotate.simulator import SimulatorHandle, serve

pytestmark = pytest.mark.slow

ROWS = 40
CHILD = interruptible(
    """
    import asyncio, json, sys
    import pandas as pd
    import pandas_llm_annotate as pla
    from pandas_llm_annotate import sync

    base_url, cache, way, rows = sys.argv[1:5]
    if way == "thread":  # as for uvloop, which nest_asyncio2 cannot patch
        sync._patch = lambda loop: False

    async def main():
        df = pd.DataFrame({"text": [f"slow text {i}" for i in range(int(rows))]})
        df.llm.annotate("text", model="m", base_url=base_url, cache=cache,
                        max_concurrency=4, progress=False)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print(json.dumps(pla.last_report().to_dict()), flush=True)
        raise
    """
)


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimulatorHandle]:
    """One second per answer: 40 rows at 4 in flight take 10 s."""
    with serve(subprocess=True, latency=1.0, jitter=0.0) as handle:
        yield handle


@pytest.mark.parametrize("way", ["nested", "thread"])
def test_first_ctrl_c_stops_a_sync_run_inside_asyncio_run(slow_sim: SimulatorHandle,
                                                          tmp_path: Path, way: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    slow_sim.reset_stats()
    child = start([str(script), slow_sim.base_url, str(tmp_path / "cache"), way, str(ROWS)])
    # once the first requests are out
    out, err, took = ctrl_c(child, lambda: slow_sim.stats()["requests"] >= 4, within=30)
    assert child.returncode == -signal.SIGINT, err
    assert "KeyboardInterrupt" in err
    assert took < 3, f"the first Ctrl-C took effect after {took:.1f} s"  # the run: 10 s
    report = json.loads(out.strip().splitlines()[-1])
    assert report["status"] == "interrupted"
    assert report["requests"] < ROWS
