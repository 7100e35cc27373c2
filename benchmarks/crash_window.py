"""What a SIGKILL costs: answers received but not yet committed are asked again.

    python benchmarks/crash_window.py [--rows 20000] [--runs 5]

A child labels `--rows` distinct texts against the simulator at latency 0 (the client
is the limit, so answers arrive fastest and the group-commit window holds the most),
64 in flight, into a fresh cache; it is killed (SIGKILL) once the server has answered a
given share of them. The same call then runs again in this process on that cache.
Asked again = the server's answers over both runs − the distinct texts: answers the
first run received and did not commit, and answers to requests in flight when killed
(which the client never saw). The promise (README, "cache"): at most those in flight
(64) plus the answers of one group-commit window (10 ms at the measured rate).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks.*` importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import pandas as pd

import pandas_llm_annotate  # noqa: F401  (registers the accessor)
from benchmarks.results import publish
from pandas_llm_annotate.pipeline.cache_writer import GROUP_S
from pandas_llm_annotate.simulator import SimulatorHandle, serve

LABELS = ["card", "loan", "other"]
CONCURRENCY = 64
CHILD = textwrap.dedent("""
    import sys
    import pandas as pd
    import pandas_llm_annotate  # registers the accessor
    base_url, cache, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    df = pd.DataFrame({"text": [f"crash window text {i}" for i in range(rows)]})
    print("ready", flush=True)
    df.llm.annotate("text", "Which?", labels=LABELS, model="sim", base_url=base_url,
                    cache=cache, max_concurrency=CONCURRENCY, progress=False)
""").replace("LABELS", repr(LABELS)).replace("CONCURRENCY", str(CONCURRENCY))


def texts(rows: int) -> list[str]:
    return [f"crash window text {i}" for i in range(rows)]


def one_kill(sim: SimulatorHandle, rows: int, share: float, cache: Path) -> dict[str, Any]:
    sim.reset_stats()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, sim.base_url, str(cache), str(rows)],
                             stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    started = None  # the first answer: imports and planning are not the rate
    while (ok := sim.stats()["ok"]) < share * rows:
        if child.poll() is not None:
            raise RuntimeError("the child finished before it could be killed: use more rows")
        if started is None and ok:
            started = time.monotonic()
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_after = time.monotonic() - (started or time.monotonic())
    first = int(sim.stats()["ok"])
    sim.reset_stats()
    df = pd.DataFrame({"text": texts(rows)})
    out = df.llm.annotate("text", "Which?", labels=LABELS, model="sim", base_url=sim.base_url,
                          cache=str(cache), max_concurrency=CONCURRENCY, progress=False)
    second = int(sim.stats()["ok"])
    rate = first / max(killed_after, 1e-3)
    return {"share": share, "killed_after_s": round(killed_after, 2), "answered_first": first,
            "asked_rerun": second, "asked_again": first + second - rows,
            "rate_per_s": round(rate), "bound": CONCURRENCY + round(rate * GROUP_S),
            "lost": int(out.isna().sum())}


def table(runs: list[dict[str, Any]], rows: int) -> str:
    lines = [f"## crash window: {rows:,} distinct rows, simulator latency 0, "
             f"{CONCURRENCY} in flight, SIGKILL then rerun", "",
             "| killed at (after the first answer, answers/s) | answered before kill | "
             "asked in rerun | asked again | bound (in flight + 10 ms of answers) | rows lost |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['share']:.0%} ({r['killed_after_s']} s, {r['rate_per_s']:,}/s) | "
                     f"{r['answered_first']:,} | {r['asked_rerun']:,} | {r['asked_again']} | "
                     f"{r['bound']} | {r['lost']} |")
    worst = max(r["asked_again"] for r in runs)
    lines += ["", f"- asked again: at most {worst} of {rows:,} over {len(runs)} kills "
              "(answers received but not yet committed, and requests in flight).",
              f"- machine: {os.cpu_count()} cores; 1-min load average "
              f"{os.getloadavg()[0]:.1f} at the end."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    shares = [0.2 + 0.6 * i / max(1, args.runs - 1) for i in range(args.runs)]
    runs = []
    with serve(latency=0, subprocess=True) as sim, tempfile.TemporaryDirectory() as tmp:
        for i, share in enumerate(shares):
            runs.append(one_kill(sim, args.rows, share, Path(tmp) / f"cache-{i}"))
    publish("crash_window", table(runs, args.rows),
            {"runs": runs, "rows": args.rows, "in_flight": CONCURRENCY,
             "load": round(os.getloadavg()[0], 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
