"""Several servers for one run (`base_url=[...]`) against real llama.cpp servers:
llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct (Q4_1), each
server with one CPU thread, on this machine.

    python3 dev.py real-llm              # once: builds llama.cpp, fetches the model
    .venv/bin/python benchmarks/servers.py [--rows 100] [--data DIR]

Labels `--rows` banking77 test rows with the 77 intents, a fresh cache each time:
1. one server; 2. two servers (`base_url=[a, b]`): wall, rows/s, each server's share;
3. two servers, one killed (SIGKILL) once it has answered a fifth of the rows: rows
   lost (must be 0), and what each server took. Prints a markdown table; writes
   `benchmarks/results/servers.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"

if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import pandas_llm_annotate as pla  # noqa: E402
from benchmarks.results import publish  # noqa: E402
from pandas_llm_annotate import llamacpp  # noqa: E402


def load(rows: int, data: Path) -> tuple[pd.DataFrame, list[str]] | None:
    csv, names = data / "banking77_test.csv", data / "banking77_categories.json"
    if not (csv.is_file() and names.is_file()):
        return None
    frame = pd.read_csv(csv).dropna()
    labels = [str(x) for x in json.loads(names.read_text())]
    return frame.sample(n=rows, random_state=1).reset_index(drop=True), labels


async def label(frame: pd.DataFrame, labels: list[str], servers: list[Any],
                kill_after: int | None = None) -> dict[str, Any]:
    """One run over `servers`; `kill_after`: SIGKILL the last server once it has answered
    that many requests in this run (read from its access log)."""
    with tempfile.TemporaryDirectory(prefix="pla-bench-") as cache:
        started = time.perf_counter()
        task = asyncio.ensure_future(frame.llm.aannotate(
            "text", labels=labels, model=servers[0].model, timeout=120, cache=cache,
            base_url=[s.base_url for s in servers], progress=False, max_concurrency=4))
        killed_at = None
        if kill_after is not None:
            victim = servers[-1]
            before = victim.statuses()[200]  # its log counts the earlier runs' answers too
            while not task.done() and victim.statuses()[200] - before < kill_after:
                await asyncio.sleep(0.05)
            os.kill(victim.pid, signal.SIGKILL)
            killed_at = round(time.perf_counter() - started, 1)
        out = await task
        wall = time.perf_counter() - started
    report = out.attrs["llm_report"]
    return {"wall_s": round(wall, 1), "rows_per_s": round(len(frame) / wall, 2),
            "lost": int(out.isna().sum()), "requests": report.requests,
            "retries": report.retries, "servers": report.servers, "killed_at_s": killed_at}


def warm(server: Any, labels: list[str]) -> None:
    """One request first, so the prompt is in the server's cache in every measured run."""
    with tempfile.TemporaryDirectory() as cache:
        pla.annotate(["warm up"], labels=labels, model=server.model, base_url=server.base_url,
                     cache=cache, progress=False, timeout=120)


def table(results: dict[str, dict[str, Any]], urls: dict[str, str]) -> str:
    lines = ["| run | wall s | rows/s | rows lost | requests | retries | server A: answers "
             "(share), p50 s | server B: answers (share), p50 s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        cells = []
        for letter in ("A", "B"):
            s = r["servers"].get(urls[letter])
            if s is None:
                cells.append("—")
                continue
            p50 = "—" if s["p50_s"] is None else f"{s['p50_s']:.2f}"
            aside = f", set aside {s['set_aside']}×" if s.get("set_aside") else ""
            cells.append(f"{s['answers']} ({s['share']:.0%}), {p50}{aside}")
        lines.append(f"| {name} | {r['wall_s']} | {r['rows_per_s']} | {r['lost']} | "
                     f"{r['requests']} | {r['retries']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--data", type=Path, default=DATA, help="folder of banking77_test.csv")
    args = parser.parse_args()
    data = load(args.rows, args.data)
    if data is None:
        print(f"skipped: banking77 not found in {args.data}")
        return 0
    reason = llamacpp.unavailable()
    if reason is not None:
        print(f"skipped: {reason}")
        return 0
    frame, labels = data
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    with llamacpp.serve_llamacpp(n_threads=1) as a, llamacpp.serve_llamacpp(n_threads=1) as b:
        warm(a, labels)
        warm(b, labels)
        urls = {"A": a.base_url, "B": b.base_url}
        one = asyncio.run(label(frame, labels, [a]))
        one["servers"] = {a.base_url: {"answers": one["requests"], "share": 1.0,
                                       "p50_s": pla.last_report().p50_s}}
        results["one server (A)"] = one
        results["two servers (A, B)"] = asyncio.run(label(frame, labels, [a, b]))
        results[f"two, B killed after {args.rows // 5} answers"] = asyncio.run(
            label(frame, labels, [a, b], kill_after=args.rows // 5))
    text = "\n".join([
        f"## servers: {args.rows} banking77 rows, 77 labels, SmolLM2-135M-Instruct Q4_1 on "
        "llama-cpp-python's server (1 thread each), max_concurrency 4 per server", "",
        table(results, urls), "",
        f"- two servers vs one: "
        f"{results['two servers (A, B)']['rows_per_s'] / one['rows_per_s']:.2f}× the rows/s.",
        f"- B was killed (SIGKILL) {results[list(results)[-1]]['killed_at_s']} s into the "
        "third run; its jobs went to A.",
        f"- machine: {os.cpu_count()} cores; 1-min load average {load_before:.1f} at the "
        f"start, {os.getloadavg()[0]:.1f} at the end (other work shares the cores).",
    ])
    publish("servers", text, {"runs": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
