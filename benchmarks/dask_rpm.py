"""`ddf.llm.annotate` on a `distributed.LocalCluster` (2 worker processes, 2 threads
each) against the simulator with an RPM limit that its headers state:

    .venv/bin/python benchmarks/dask_rpm.py [--rows 20000] [--distinct 8000] [--rpm 12000]

- `pla dask`: `ddf.llm.annotate("text", labels=...)`: distinct texts across partitions,
  one rate budget for the cluster (leases from a coordinator actor).
- `naive map_partitions`: `ddf["text"].map_partitions(lambda s: s.llm.annotate(...))`,
  the pandas accessor in each partition: each worker process has its own limiter, and
  a text is asked again in every partition it appears in (the cache helps only once an
  earlier partition has answered it).

Both get a fresh cache and a fresh simulator state (its buckets full). The bound is the
key's: distinct texts / (rpm / 60). Prints a markdown table; writes
`benchmarks/results/dask_rpm.md`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import dask.dataframe as dd  # noqa: E402
import distributed  # noqa: E402
import pandas as pd  # noqa: E402

import pandas_llm_annotate as pla  # noqa: E402, F401  (ddf.llm)
from benchmarks.results import publish  # noqa: E402
from pandas_llm_annotate.simulator import serve  # noqa: E402

LABELS = ["card", "transfer", "refund", "account", "other"]


def frame(rows: int, distinct: int, partitions: int) -> Any:
    """`rows` texts, `distinct` of them different, shuffled over the partitions."""
    texts = [f"customer message {i}: please help with my card and my account"
             for i in range(distinct)]
    cells = texts + [random.Random(i).choice(texts) for i in range(rows - distinct)]
    random.Random(1).shuffle(cells)
    return dd.from_pandas(pd.DataFrame({"text": cells}), npartitions=partitions, sort=False)


def measure(name: str, run: Any, sim: Any, distinct: int, bound: float) -> dict[str, Any]:
    sim.reset_stats()
    start = time.perf_counter()
    out = run()
    wall = time.perf_counter() - start
    stats = sim.stats()
    return {"contender": name, "wall_s": round(wall, 1), "x_bound": round(wall / bound, 2),
            "requests": stats["requests"], "answered": stats["ok"],
            "rate_limited": stats["rate_limited"],
            "share_429": round(stats["rate_limited"] / max(1, stats["requests"]), 4),
            "lost": int(out.isna().sum()), "distinct": distinct}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--distinct", type=int, default=8_000)
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--rpm", type=float, default=12_000)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    ddf = frame(args.rows, args.distinct, args.partitions)
    bound = args.distinct / (args.rpm / 60)
    load_before = os.getloadavg()[0]
    results = []
    with serve(latency=args.latency, rpm=args.rpm, subprocess=True, seed=1) as sim, \
            distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                     host="127.0.0.1", dashboard_address=None,
                                     silence_logs=40) as cluster, \
            distributed.Client(cluster):
        opts = {"model": "sim", "base_url": sim.base_url, "progress": False}

        def pla_dask() -> pd.Series:
            with tempfile.TemporaryDirectory() as cache:
                return ddf.llm.annotate("text", labels=LABELS, cache=cache, **opts).compute()

        def naive() -> pd.Series:
            with tempfile.TemporaryDirectory() as cache:
                return ddf["text"].map_partitions(
                    lambda s: s.llm.annotate(labels=LABELS, cache=cache, **opts),
                    meta=pd.Series(dtype=object, name="text")).compute()

        for name, run in (("pla dask", pla_dask), ("naive map_partitions", naive)):
            time.sleep(2.0)  # the simulator's buckets refill (1 s of burst) between runs
            results.append(measure(name, run, sim, args.distinct, bound))
    lines = [
        f"## dask: {args.rows:,} rows, {args.distinct:,} distinct, {args.partitions} "
        f"partitions; LocalCluster 2 processes x 2 threads; simulator RPM {args.rpm:,.0f} "
        f"(in its headers), latency {args.latency} s",
        "",
        "| contender | wall s | × bound | requests | answered | 429s | 429 share | rows lost |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {r['contender']} | {r['wall_s']} | {r['x_bound']} | {r['requests']:,} | "
          f"{r['answered']:,} | {r['rate_limited']:,} | {r['share_429']:.1%} | {r['lost']} |"
          for r in results),
        "",
        f"- bound = distinct / (RPM / 60) = {bound:.1f} s.",
        f"- machine: {os.cpu_count()} cores; 1-min load average {load_before:.1f} at the "
        f"start, {os.getloadavg()[0]:.1f} at the end (other work shares the cores).",
    ]
    publish("dask_rpm", "\n".join(lines), {"bound_s": bound, "runs": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
