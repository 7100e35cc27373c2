"""``scale``: 10,000,000 rows (1,000,000 distinct) at latency 0, end to end, in a child
process: rows/s and peak RSS, so a user knows what one machine does; then the cached
rerun in a fresh child."""

from __future__ import annotations

from benchmarks.results import Scenario
from benchmarks.scenarios.memory import big_column

ROWS = 10_000_000
DISTINCT = 1_000_000
QUICK_ROWS, QUICK_DISTINCT = 2_000_000, 200_000


def run(quick: bool) -> Scenario:
    rows, distinct = (QUICK_ROWS, QUICK_DISTINCT) if quick else (ROWS, DISTINCT)
    s = big_column("scale", rows, distinct, rerun=True, quick=quick, timeout_s=3600)
    if quick:
        s.notes.insert(0, f"--quick: {QUICK_ROWS:,} rows ({QUICK_DISTINCT:,} distinct) "
                          f"instead of {ROWS:,} ({DISTINCT:,}).")
    return s
