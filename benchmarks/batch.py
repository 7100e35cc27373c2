"""Batch mode against the simulator: what 10,000 banking77 rows cost online and through the
Batch API, beside what `df.llm.estimate(...)` predicted; and a run killed while its batch
runs, then resumed.

    .venv/bin/python benchmarks/batch.py [--rows 10000] [--data ../shared/data]

- Four runs over the first `--rows` rows of banking77's train split with its 77 intents,
  model name `gpt-4o-mini` (list price $0.15 / $0.60 per 1M tokens): online k=1, online
  `rows_per_request="auto"`, batch k=1 and batch "auto"; each on a fresh cache, after
  an estimate with the same arguments. Requests and tokens are the simulator's counts
  (its own BPE-like count, `simulator/tokens.py`, not the package's estimate; see
  `benchmarks/estimate.py` for the estimate against llama.cpp); "billed" is the report's
  cost (batch answers at half the list price), "predicted" the estimate's (batch price
  for batch runs).
- The kill check: a child process runs batch k=1 on a fresh cache and is killed (SIGKILL)
  while its batch is in progress; the same call in this process then resumes it. It
  counts batches created and requests asked twice (texts the simulator answered twice).

Prints a markdown table; writes `benchmarks/results/batch.md` and `.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import pandas_llm_annotate as pla  # noqa: E402
from benchmarks.results import publish  # noqa: E402
from pandas_llm_annotate.report.pricing import price_of  # noqa: E402
from pandas_llm_annotate.simulator import SimulatorHandle, serve  # noqa: E402

MODEL = "gpt-4o-mini"
CONFIGS = [("online, k=1", False, 1), ('online, "auto"', False, "auto"),
           ("batch, k=1", True, 1), ('batch, "auto"', True, "auto")]
CHILD = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    import pandas_llm_annotate as pla

    base_url, cache, texts, labels = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    df = pd.DataFrame({"text": json.load(open(texts))})
    df.llm.annotate("text", labels=json.load(open(labels)), model="MODEL", base_url=base_url,
                    cache=cache, progress=False, batch=True)
    """
).replace("MODEL", MODEL)


def load(data: Path, rows: int) -> tuple[pd.DataFrame, list[str]] | None:
    train = data / "banking77_train.csv"
    if not train.exists():
        return None
    frame = pd.read_csv(train).dropna().head(rows).reset_index(drop=True)
    labels = [str(x) for x in json.loads((data / "banking77_categories.json").read_text())]
    return frame, labels


def list_cost(prompt: int, completion: int) -> float:
    price = price_of(MODEL)
    assert price is not None
    return (prompt * price[0] + completion * price[1]) / 1e6


def measure(sim: SimulatorHandle, frame: pd.DataFrame, labels: list[str], name: str,
            batch: bool, rows: int | str) -> dict[str, Any]:
    options: dict[str, Any] = {"model": MODEL, "base_url": sim.base_url, "progress": False,
                               "batch": batch, "rows_per_request": rows, "batch_poll_s": 0.2}
    with tempfile.TemporaryDirectory(prefix="pla-bench-batch-") as cache:
        estimate = frame.llm.estimate("text", labels=labels, cache=cache, **options)
        sim.reset_stats()
        started = time.perf_counter()
        out = frame.llm.annotate("text", labels=labels, cache=cache, **options)
        wall = time.perf_counter() - started
    report, stats = pla.last_report(), sim.stats()
    assert report is not None
    requests = stats["requests"] + stats["batch_requests"] + stats["batch_failed"]
    return {
        "run": name, "wall_s": round(wall, 1), "answered": int(out.notna().sum()),
        "requests": requests, "batches": stats["batches"],
        "prompt_tokens": stats["prompt_tokens"], "completion_tokens": stats["completion_tokens"],
        "list_usd": round(list_cost(stats["prompt_tokens"], stats["completion_tokens"]), 4),
        "billed_usd": report.cost_usd and round(report.cost_usd, 4),
        "est_requests": estimate.requests, "est_prompt_tokens": estimate.prompt_tokens,
        "est_completion_tokens": estimate.completion_tokens,
        "est_usd": estimate.cost_usd and round(estimate.cost_usd, 4),
    }


def kill_check(frame: pd.DataFrame, labels: list[str]) -> dict[str, Any]:
    """A child killed while its batch runs; the rerun here resumes it."""
    with serve(subprocess=True, batch_delay=20.0) as sim, \
            tempfile.TemporaryDirectory(prefix="pla-bench-kill-") as tmp:
        folder = Path(tmp)
        (folder / "child.py").write_text(CHILD)
        (folder / "texts.json").write_text(json.dumps(frame["text"].tolist()))
        (folder / "labels.json").write_text(json.dumps(labels))
        cache = folder / "cache"
        child = subprocess.Popen(
            [sys.executable, str(folder / "child.py"), sim.base_url, str(cache),
             str(folder / "texts.json"), str(folder / "labels.json")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while sim.stats()["batch_requests"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        killed_at = sim.stats()["batch_requests"]
        child.send_signal(signal.SIGKILL)
        child.communicate()
        before = sim.stats()
        out = frame.llm.annotate("text", labels=labels, model=MODEL, base_url=sim.base_url,
                                 cache=str(cache), progress=False, batch=True, batch_poll_s=0.5)
        report, after = pla.last_report(), sim.stats()
        assert report is not None
        return {
            "killed_after_answers": killed_at, "batches_before_kill": before["batches"],
            "batches_after_rerun": after["batches"],
            "batches_submitted_twice": after["batches"] - before["batches"],
            "requests_asked_twice": sum(1 for n in after["texts"].values() if n > 1),
            "rerun_batches_resumed": report.batches_resumed, "rerun_requests": report.requests,
            "answered": int(out.notna().sum()), "rows": len(frame),
        }


def table(rows: list[dict[str, Any]]) -> str:
    def usd(v: float | None) -> str:
        return "-" if v is None else f"${v:.4f}"

    lines = ["| run | requests (predicted) | prompt tokens (predicted) | completion tokens "
             "(predicted) | list price | billed (predicted) | batches | wall |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['requests']:,} ({r['est_requests']:,}) | "
            f"{r['prompt_tokens']:,} ({r['est_prompt_tokens']:,}) | "
            f"{r['completion_tokens']:,} ({r['est_completion_tokens']:,}) | "
            f"{usd(r['list_usd'])} | {usd(r['billed_usd'])} ({usd(r['est_usd'])}) | "
            f"{r['batches']} | {r['wall_s']} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    loaded = load(args.data, args.rows)
    if loaded is None:
        print(f"skipped: {args.data / 'banking77_train.csv'} is absent (pass --data)")
        return 0
    frame, labels = loaded
    with serve(subprocess=True, latency=0.05, batch_delay=2.0) as sim:
        rows = [measure(sim, frame, labels, *config) for config in CONFIGS]
    kill = kill_check(frame, labels)
    text = (f"{len(frame):,} banking77 train rows ({frame['text'].nunique():,} distinct), 77 "
            f"intents, model {MODEL} (list price per 1M tokens $0.15 in / $0.60 out), "
            "simulator\n\n" + table(rows) + "\n\nKilled while its batch ran, then rerun: "
            f"{kill['batches_submitted_twice']} batches and {kill['requests_asked_twice']} "
            f"requests submitted twice; the rerun resumed {kill['rerun_batches_resumed']} "
            f"batch, sent {kill['rerun_requests']} new requests and answered "
            f"{kill['answered']:,} of {kill['rows']:,} rows.\n\nLoad average at the end "
            + ", ".join(f"{x:.2f}" for x in os.getloadavg())
            + f" ({os.cpu_count()} cores); walls are noisy, the counts are not.")
    publish("batch", text, {"runs": rows, "kill": kill})
    return 0


if __name__ == "__main__":
    sys.exit(main())
