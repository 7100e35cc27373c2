"""Memory of a big `ddf.llm.annotate` run on a `distributed.LocalCluster` (2 worker
processes, 2 threads each) against the simulator at latency 0, to show the data need not
fit in one process:
    .venv/bin/python benchmarks/dask_memory.py [--rows 10000000] [--distinct 100000]

The run happens in a child process (the client: it also holds the scheduler and the
nannies, as LocalCluster does), which builds the frame lazily (each partition's texts
are made on a worker, never on the client), labels it, and brings back only the counts
of each label. Peak RSS = VmHWM of each process's own memory: each worker (asked with
`client.run`) and the client; the simulator runs in a process of its own, not counted.
Prints a markdown table; writes `benchmarks/results/dask_memory.{md,json,png}`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from benchmarks.protocol import BASE_TEXTS, peak_rss_mb  # noqa: E402
from benchmarks.results import RESULTS, machine, publish  # noqa: E402

LABELS = ["card", "transfer", "refund", "account", "other"]
PREFIX = "DASK_MEMORY_RESULT "


def part(start: int, stop: int, distinct: int) -> Any:
    """Rows `start..stop`: row r has text r % distinct (made on the worker)."""
    import pandas as pd

    texts = [f"{BASE_TEXTS[j % len(BASE_TEXTS)]} (ref {j})"
             for j in (r % distinct for r in range(start, stop))]
    return pd.DataFrame({"text": pd.array(texts, dtype="str")},
                        index=pd.RangeIndex(start, stop))


def child(rows: int, distinct: int, partitions: int) -> dict[str, Any]:
    import dask.dataframe as dd
    import distributed
    import pandas as pd

    import pandas_llm_annotate as pla  # noqa: F401  (ddf.llm)
    from pandas_llm_annotate.simulator import serve

    step = -(-rows // partitions)
    bounds = [(a, min(a + step, rows)) for a in range(0, rows, step)]
    meta = pd.DataFrame({"text": pd.Series([], dtype="str")})
    ddf = dd.from_map(lambda b: part(b[0], b[1], distinct), bounds, meta=meta,
                      divisions=[a for a, _ in bounds] + [rows - 1])
    with serve(latency=0.0, subprocess=True, seed=1) as sim, \
            distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                     host="127.0.0.1", dashboard_address=None,
                                     silence_logs=40) as cluster, \
            distributed.Client(cluster) as client, \
            tempfile.TemporaryDirectory() as cache:
        before = client.run(peak_rss_mb)
        start = time.perf_counter()
        out = ddf.llm.annotate("text", labels=LABELS, model="sim", base_url=sim.base_url,
                               cache=cache, progress=False)
        counts = out.fillna("<none>").value_counts().compute()
        wall = time.perf_counter() - start
        workers = client.run(peak_rss_mb)
        stats = sim.stats()
    return {"rows": rows, "distinct": distinct, "partitions": partitions, "wall_s": wall,
            "rows_per_s": rows / wall, "requests": stats["requests"],
            "rows_without_label": int(counts.get("<none>", 0)),
            "labels": {str(k): int(v) for k, v in counts.items()},
            "worker_peak_mb_at_start": list(before.values()),
            "worker_peak_mb": list(workers.values()), "client_peak_mb": peak_rss_mb()}


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"worker {i + 1}" for i in range(len(result["worker_peak_mb"]))] + ["client"]
    values = [*result["worker_peak_mb"], result["client_peak_mb"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar(names, values, color="#4c72b0")
    ax.bar_label(bars, fmt="%.0f")
    ax.set_ylabel("peak RSS (VmHWM), MB")
    ax.set_title(f"dask: {result['rows']:,} rows ({result['distinct']:,} distinct)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--distinct", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=40)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(PREFIX + json.dumps(child(args.rows, args.distinct, args.partitions)), flush=True)
        return 0
    load_before = os.getloadavg()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--rows", str(args.rows),
           "--distinct", str(args.distinct), "--partitions", str(args.partitions)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith(PREFIX))
    r: dict[str, Any] = json.loads(line[len(PREFIX):])
    load_after = os.getloadavg()
    m = machine()
    workers = " / ".join(f"{mb:,.0f}" for mb in r["worker_peak_mb"])
    text = "\n".join([
        f"## dask memory: {r['rows']:,} rows, {r['distinct']:,} distinct, "
        f"{r['partitions']} partitions; LocalCluster 2 processes x 2 threads; simulator "
        "latency 0",
        "",
        "| rows | distinct | wall s | rows/s | requests | rows without a label | "
        "peak RSS per worker MB | peak RSS client MB |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['rows']:,} | {r['distinct']:,} | {r['wall_s']:.1f} | {r['rows_per_s']:,.0f} | "
        f"{r['requests']:,} | {r['rows_without_label']:,} | {workers} | "
        f"{r['client_peak_mb']:,.0f} |",
        "",
        "- peak RSS = VmHWM of each process's own memory (/proc/self/status): each worker "
        "process (via `client.run`; at the start: "
        + " / ".join(f"{mb:,.0f}" for mb in r["worker_peak_mb_at_start"]) + " MB) and the "
        "client process (which also runs the scheduler and the nannies). The frame is made "
        "lazily on the workers (`dd.from_map`); only each label's count comes back.",
        "- wall = `annotate` + `value_counts().compute()`: the distinct-texts pass, the "
        "requests, the join back to every row.",
        f"- machine: {m['cores']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python "
        f"{m['python']}; 1-min load average {load_before[0]:.1f} at the start, "
        f"{load_after[0]:.1f} at the end (other work shares the cores).",
    ])
    RESULTS.mkdir(parents=True, exist_ok=True)
    chart(r, RESULTS / "dask_memory.png")
    publish("dask_memory", text, {**r, "load_average": [load_before, load_after]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
