"""Measurements against a real server and model: llama-cpp-python's OpenAI-compatible
server with SmolLM2-135M-Instruct (Q4_1), on this machine's CPU.

    python3 dev.py real-llm                 # once: builds llama.cpp, fetches the model
    .venv/bin/python benchmarks/real_llm.py [--rows 100] [--concurrency 1,2,4,8]

- Throughput (rows/s) labelling `--rows` banking77 test rows with the 77 intents at each
  `max_concurrency`, a fresh cache each time: latency p50/p95, the concurrency window the
  package settled on (`report.window`), the most requests in flight, retries, the
  structured-output form it chose (`report.answer_format`).
- The share of valid labels (and agreement with the gold intents) with the answer
  constrained (`structured=True`, the default) and without (`structured=False`).
- A tight timeout (`--tight-timeout`, 2.5 s by default) at 8 in flight, with the limiter's
  timeout guard and, as the control, with it switched off in the child process: how many
  requests were retried after a timeout (a server that queues keeps working on requests
  whose client gave up).

The server answers one request at a time, so more in flight only queues: throughput should
stay flat from 2 on while latency grows. Each measured run is a fresh process (a fresh
limiter and format negotiation: what a user's first run sees); a warm-up request first
loads the prompt into the server's cache. A bare client (aiohttp, exactly `c` requests in
flight, the package's own request body, no window) is the reference: what the server
gives at each concurrency. Prints a markdown table; writes
`benchmarks/results/real_llm.md` and `.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"

if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import pandas as pd  # noqa: E402

import pandas_llm_annotate as pla  # noqa: E402
from benchmarks.results import publish  # noqa: E402
from pandas_llm_annotate import llamacpp  # noqa: E402
from pandas_llm_annotate.protocol.prompts import build_messages, system_prompt  # noqa: E402
from pandas_llm_annotate.protocol.structured import label_schema, response_format  # noqa: E402
from pandas_llm_annotate.tasks.labels import default_max_tokens  # noqa: E402


def load(rows: int) -> tuple[pd.DataFrame, list[str]]:
    frame = pd.read_csv(DATA / "banking77_test.csv").dropna()
    labels = [str(x) for x in json.loads((DATA / "banking77_categories.json").read_text())]
    return frame.sample(n=rows, random_state=1).reset_index(drop=True), labels


def run(frame: pd.DataFrame, labels: list[str], *, model: str, base_url: str,
        **options: Any) -> dict[str, Any]:
    options.setdefault("timeout", 120)
    with tempfile.TemporaryDirectory(prefix="pla-bench-") as cache:
        started = time.perf_counter()
        out = frame.llm.annotate("text", labels=labels, model=model, base_url=base_url,
                                 cache=cache, progress=False, **options)
        wall = time.perf_counter() - started
    report = pla.last_report()
    assert report is not None
    return {
        **options,
        "rows": len(frame),
        "wall_s": round(wall, 2),
        "rows_per_s": round(len(frame) / wall, 2),
        "p50_s": report.p50_s,
        "p95_s": report.p95_s,
        "window": getattr(report, "window", None),
        "max_in_flight": report.max_in_flight,
        "requests": report.requests,
        "retries": report.retries,
        "failed": report.failed,
        "answer_format": report.answer_format,
        "valid": round(float(out.isin(labels).mean()), 4),
        "agreement": round(float((out == frame["category"]).mean()), 4),
        "status": report.status,
        "raw_examples": report.failures["raw_answer"].head(3).tolist(),
    }


def in_child(spec: dict[str, Any]) -> dict[str, Any]:
    """`run` in a fresh interpreter: no limiter or negotiation state from earlier runs."""
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def child(spec: dict[str, Any]) -> int:
    frame, labels = load(spec.pop("rows"))
    if not spec.pop("guard", True):  # the control run: the limiter without its timeout guard
        from benchmarks.ablation import timeout_guard_off

        timeout_guard_off()
    if spec.pop("negotiate_first", False):  # one row alone first: later retries are timeouts
        pla.annotate(frame["text"].head(1), labels=labels, model=spec["model"],
                     base_url=spec["base_url"], cache=False, progress=False, max_concurrency=1)
        frame = frame.iloc[1:]
    print(json.dumps(run(frame, labels, **spec), default=str))
    return 0


async def bare(frame: pd.DataFrame, labels: list[str], base_url: str, model: str,
               concurrency: int) -> dict[str, Any]:
    """Exactly `concurrency` requests in flight, the package's constrained request body."""
    system = system_prompt(None, labels)
    fmt = response_format("json_object+schema", label_schema(labels))
    max_tokens = default_max_tokens(None, labels)
    latencies: list[float] = []
    texts = list(frame["text"])
    async with aiohttp.ClientSession() as session:
        async def worker() -> None:
            while texts:
                body = {"model": model, "messages": build_messages(system, texts.pop()),
                        "temperature": 0, "max_tokens": max_tokens, "response_format": fmt}
                start = time.perf_counter()
                async with session.post(base_url + "/chat/completions", json=body) as resp:
                    await resp.read()
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies.sort()
    return {"max_concurrency": concurrency, "rows": len(frame), "wall_s": round(wall, 2),
            "rows_per_s": round(len(frame) / wall, 2),
            "p50_s": latencies[len(latencies) // 2]}


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(results: dict[str, Any]) -> str:
    lines = [
        f"## real LLM: llama-cpp-python {results['llama_cpp']} server, "
        f"{results['model']}, {results['rows']} banking77 rows, 77 labels",
        "",
        "| max_concurrency | rows/s | wall s | p50 s | p95 s | window at the end | "
        "max in flight | retries | form | valid labels | bare client rows/s | bare p50 s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    bare_by_c = {r["max_concurrency"]: r for r in results["bare"]}
    for r in results["concurrency"]:
        b = bare_by_c.get(r["max_concurrency"], {})
        lines.append(
            f"| {r['max_concurrency']} | {fmt(r['rows_per_s'])} | {fmt(r['wall_s'])} | "
            f"{fmt(r['p50_s'], 3)} | {fmt(r['p95_s'], 3)} | {fmt(r['window'])} | "
            f"{r['max_in_flight']} | {r['retries']} | {r['answer_format']} | "
            f"{r['valid']:.0%} | {fmt(b.get('rows_per_s'))} | {fmt(b.get('p50_s'), 3)} |")
    lines += [
        "",
        "| answer | form | valid labels | agreement with gold | NaN rows | rows/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["structured"].items():
        lines.append(
            f"| {name} | {r['answer_format']} | {r['valid']:.1%} | {r['agreement']:.1%} | "
            f"{r['failed']} | {fmt(r['rows_per_s'])} |")
    if results.get("timeout"):
        lines += [
            "",
            f"Tight timeout: {results['timeout'][0]['timeout']} s, max_concurrency 8, "
            f"{results['timeout'][0]['rows']} rows (the answer format negotiated by one row "
            "before, so every retry here followed a timeout):",
            "",
            "| timeout guard | rows/s | retries | failed | window at the end | valid labels |",
            "|---|---|---|---|---|---|",
        ]
        for r in results["timeout"]:
            lines.append(
                f"| {'on' if r['guard'] else 'off (control)'} | {fmt(r['rows_per_s'])} | "
                f"{r['retries']} | {r['failed']} | {fmt(r['window'])} | {r['valid']:.0%} |")
    unconstrained = results["structured"].get("unconstrained (structured=False)")
    lines += [
        "",
        "- rows/s = rows / wall of the labelling call (a fresh process per row of the table, "
        "so each run also negotiates the answer format: the retries are the refused "
        "`json_schema` requests). window at the end = `report.window`. bare client = aiohttp "
        "with exactly that many requests in flight and the same constrained request, no "
        f"window, on the first {results['bare_rows']} of the rows.",
        f"- machine: {os.cpu_count()} cores; 1-min load average {results['load'][0]:.1f} at "
        f"the start, {results['load'][1]:.1f} at the end (above ~1, other work shared the "
        "cores). The server runs the model on one thread (`serve_llamacpp`'s default: half "
        "the cores) and answers one request at a time.",
        "- agreement = rows whose label equals the dataset's intent, NaN counted as wrong; "
        f"chance is {1 / 77:.1%}. A 135M model is a poor labeller: the pipeline is the point.",
    ]
    if unconstrained and unconstrained["raw_examples"]:
        lines.append("- unconstrained answers that were not a label, e.g. "
                     + "; ".join(repr(str(x)[:80]) for x in unconstrained["raw_examples"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--structured-concurrency", type=int, default=2,
                        help="max_concurrency of the with/without-constraint runs")
    parser.add_argument("--bare-rows", type=int, default=60,
                        help="rows for the bare-client reference (0: none)")
    parser.add_argument("--tight-timeout", type=float, default=2.5,
                        help="timeout of the guard on/off runs (0: skip them)")
    parser.add_argument("--timeout-rows", type=int, default=48)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    reason = llamacpp.unavailable()
    if reason is not None:
        print(f"skipped: {reason}", file=sys.stderr)
        return 2
    if not (DATA / "banking77_test.csv").is_file():
        print(f"skipped: no {DATA / 'banking77_test.csv'}", file=sys.stderr)
        return 2
    import llama_cpp

    frame, labels = load(args.rows)
    load_start = os.getloadavg()[0]
    results: dict[str, Any] = {"rows": args.rows, "llama_cpp": llama_cpp.__version__,
                               "model": llamacpp.MODEL_FILE, "concurrency": [],
                               "structured": {}, "bare": [], "bare_rows": args.bare_rows}
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    with llamacpp.serve_llamacpp() as server:
        where = {"model": server.model, "base_url": server.base_url}  # for the children
        asyncio.run(bare(frame.head(2), labels, server.base_url, server.model, 1))  # warm-up
        for c in concurrencies:
            r = in_child({"rows": args.rows, **where, "max_concurrency": c})
            print(f"max_concurrency={c}: {r['rows_per_s']} rows/s, window {r['window']}, "
                  f"p50 {fmt(r['p50_s'], 3)} s, retries {r['retries']}", flush=True)
            results["concurrency"].append(r)
        if args.bare_rows:
            for c in concurrencies:
                b = asyncio.run(bare(frame.head(args.bare_rows), labels, server.base_url,
                                     server.model, c))
                print(f"bare client, {c} in flight: {b['rows_per_s']} rows/s, "
                      f"p50 {b['p50_s']:.3f} s", flush=True)
                results["bare"].append(b)
        c = args.structured_concurrency
        for name, structured in (("constrained (structured=True)", True),
                                 ("unconstrained (structured=False)", False)):
            r = in_child({"rows": args.rows, **where, "max_concurrency": c,
                          "structured": structured})
            print(f"{name}: valid {r['valid']:.1%}, agreement {r['agreement']:.1%}", flush=True)
            results["structured"][name] = r
        results["timeout"] = []
        for guard in (True, False) if args.tight_timeout else ():
            r = in_child({"rows": args.timeout_rows, **where, "max_concurrency": 8,
                          "timeout": args.tight_timeout, "guard": guard,
                          "negotiate_first": True})
            r["guard"] = guard
            print(f"timeout {args.tight_timeout} s, guard {guard}: {r['retries']} retries, "
                  f"{r['rows_per_s']} rows/s", flush=True)
            results["timeout"].append(r)
        results["server_statuses"] = dict(server.statuses())
    results["load"] = (load_start, os.getloadavg()[0])
    publish("real_llm", table(results), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
