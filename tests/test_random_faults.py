"""Random faults (HTTP 500s, dropped connections, truncated JSON) among successes are
not overload: against the simulator with 20 % of them, the run loses nothing and the
window stays open. (The throughput is measured in benchmarks/, scenario `faults`.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import pandas_llm_annotate as pla
from pandas_llm_annotate.ratelimit import registry
from pandas_llm_annotate.simulator import serve


def test_random_faults_do_not_close_the_window(tmp_path: Path) -> None:
    df = pd.DataFrame({"text": [f"fault test {i}" for i in range(800)]})
    with serve(latency=0.05, faults=0.2, fault_kinds=("error", "reset", "malformed"),
               seed=5) as sim:
        out = df.llm.annotate("text", model="m", base_url=sim.base_url, max_concurrency=64,
                              cache=str(tmp_path / "c"), progress=False)
        faults = sim.stats()["faults"]
    limiter = next(v for k, v in registry._shared.items() if k[0] == sim.base_url)
    report = pla.last_report()
    assert out.notna().all()
    assert report is not None and report.failed == 0 and report.retries >= 100
    assert all(faults[kind] > 20 for kind in ("error", "reset", "malformed"))
    # Before: each reset halved the window (once a second): it ended near 8.
    assert limiter.window.limit >= 32, limiter.window.limit
