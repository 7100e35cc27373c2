"""How close `df.llm.estimate(...)` comes to the tokens a server then counts: the simulator
and a real llama.cpp server side by side, before calibration and after.

    .venv/bin/python benchmarks/estimate.py [--sim-rows 1000] [--llama-rows 200]

- Rows: banking77 test rows (a fixed sample) labelled with the 77 intents, one row per
  request (k=1) and packed (`rows_per_request="auto"`). Each sample is split in two
  halves, run one after the other on one cache: the first half's estimate is
  uncalibrated (an empty cache), the second half's is calibrated by the `usage` the
  first half's answers stored in the cache namespace; the second half is also estimated
  on an empty cache, for the uncalibrated error on the same rows.
- "actual" is the `usage` the server returned (the report's tokens; retried requests
  included, so the requests column shows them); "before" is the estimate with the
  former prompt count (≈4 characters per token, no extra token per underscore or quote).
- The simulator counts tokens its own way (`simulator/tokens.py`, a crude BPE-like
  pre-tokenizer, not the client's estimate); llama.cpp counts with SmolLM2's tokenizer,
  chat template included. `python3 dev.py real-llm` sets llama.cpp up; without it the
  llama.cpp rows say why they are missing.

Prints a markdown table; writes `benchmarks/results/estimate.md`, `.json` and `.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import pandas_llm_annotate as pla  # noqa: E402
from benchmarks.results import RESULTS, publish  # noqa: E402
from pandas_llm_annotate import llamacpp  # noqa: E402
from pandas_llm_annotate.pipeline import requests as request_building  # noqa: E402
from pandas_llm_annotate.simulator import serve  # noqa: E402
from pandas_llm_annotate.text import estimate_tokens  # noqa: E402

KS: list[int | str] = [1, "auto"]


def load(data: Path, rows: int, seed: int = 7) -> tuple[pd.DataFrame, list[str]]:
    frame = pd.read_csv(data / "banking77_test.csv").dropna()
    labels = [str(x) for x in json.loads((data / "banking77_categories.json").read_text())]
    return frame.sample(n=rows, random_state=seed).reset_index(drop=True), labels


@contextmanager
def former_prompt_count() -> Iterator[None]:
    """Request building with the prompt count before `estimate_prompt_tokens`."""
    current: Callable[[str], int] = request_building.estimate_prompt_tokens
    request_building.estimate_prompt_tokens = estimate_tokens
    try:
        yield
    finally:
        request_building.estimate_prompt_tokens = current


def error(predicted: float, actual: float) -> float | None:
    return round((predicted / actual - 1) * 100, 1) if actual else None


def row(server: str, k: int | str, part: str, est: pla.Estimate, rep: Any,
        before: pla.Estimate | None = None) -> dict[str, Any]:
    return {
        "server": server, "k": str(k), "part": part, "rows": rep.rows,
        "calibrated_from": est.calibrated_from,
        "requests": rep.requests, "est_requests": est.requests,
        "prompt": rep.prompt_tokens, "est_prompt": est.prompt_tokens,
        "prompt_error": error(est.prompt_tokens, rep.prompt_tokens),
        "before_prompt_error": before and error(before.prompt_tokens, rep.prompt_tokens),
        "completion": rep.completion_tokens, "est_completion": est.completion_tokens,
        "completion_error": error(est.completion_tokens, rep.completion_tokens),
    }


def measure(server: str, frame: pd.DataFrame, labels: list[str], k: int | str,
            options: dict[str, Any]) -> list[dict[str, Any]]:
    """The three comparisons for one server and `rows_per_request`."""
    options = {**options, "rows_per_request": k, "progress": False}
    half = len(frame) // 2
    first, second = frame.iloc[:half], frame.iloc[half:]

    def estimate(part: pd.DataFrame, cache: str) -> pla.Estimate:
        return part.llm.estimate("text", labels=labels, cache=cache, **options)

    def annotate(part: pd.DataFrame, cache: str) -> Any:
        part.llm.annotate("text", labels=labels, cache=cache, **options)
        rep = pla.last_report()
        assert rep is not None and rep.prompt_tokens, "the server sent no usage"
        return rep

    with tempfile.TemporaryDirectory(prefix="pla-bench-est-") as empty:
        fresh = estimate(second, empty)
    with tempfile.TemporaryDirectory(prefix="pla-bench-est-") as cache:
        with former_prompt_count():
            before_first = estimate(first, cache)
        est_first = estimate(first, cache)
        rep_first = annotate(first, cache)
        est_second = estimate(second, cache)
        rep_second = annotate(second, cache)
    return [
        row(server, k, "first half, uncalibrated", est_first, rep_first, before_first),
        row(server, k, "second half, uncalibrated", fresh, rep_second),
        row(server, k, "second half, calibrated", est_second, rep_second),
    ]


def table(rows: list[dict[str, Any]]) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:+.1f} %"

    lines = ["| server | k | rows | estimate | requests (predicted) | prompt tokens "
             "(predicted) | prompt error | before | completion tokens (predicted) | "
             "completion error |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['server']} | {r['k']} | {r['rows']:,} | {r['part']} | "
            f"{r['requests']:,} ({r['est_requests']:,}) | "
            f"{r['prompt']:,} ({r['est_prompt']:,}) | **{pct(r['prompt_error'])}** | "
            f"{pct(r['before_prompt_error'])} | "
            f"{r['completion']:,} ({r['est_completion']:,}) | {pct(r['completion_error'])} |")
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """Prompt and completion error per comparison, as bars around 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{r['server']} k={r['k']}\n{r['part']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(rows) + 2), 5))
    width = 0.4
    for i, (key, label, color) in enumerate([
            ("prompt_error", "prompt tokens", "#4c72b0"),
            ("completion_error", "completion tokens", "#dd8452")]):
        values = [r[key] or 0.0 for r in rows]
        xs = [x + (i - 0.5) * width for x in range(len(rows))]
        bars = ax.bar(xs, values, width, label=label, color=color)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(f"{value:+.1f}%", (bar.get_x() + bar.get_width() / 2, value),
                        ha="center", va="bottom" if value >= 0 else "top", fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("estimate vs server's usage (%)")
    ax.set_title("estimate: predicted vs actual tokens (banking77, 77 intents)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sim-rows", type=int, default=1000)
    parser.add_argument("--llama-rows", type=int, default=200)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    if not (args.data / "banking77_test.csv").exists():
        print(f"skipped: {args.data / 'banking77_test.csv'} is absent (pass --data)")
        return 0
    rows: list[dict[str, Any]] = []
    frame, labels = load(args.data, args.sim_rows)
    with serve(subprocess=True, latency=0.01) as sim:
        for k in KS:
            rows += measure("simulator", frame, labels, k,
                            {"model": "gpt-4o-mini", "base_url": sim.base_url})
    frame, labels = load(args.data, args.llama_rows)
    missing = llamacpp.unavailable()
    if missing is None:
        with llamacpp.serve_llamacpp() as server:
            options = {"model": server.model, "base_url": server.base_url, "timeout": 120}
            frame.head(1).llm.annotate("text", labels=labels, cache=False, progress=False,
                                       **options)  # warm-up: the prompt into its cache
            for k in KS:
                rows += measure("llama.cpp", frame, labels, k, options)
    text = (f"banking77 test rows, 77 intents: the simulator ({args.sim_rows:,} rows) and "
            f"llama.cpp with SmolLM2-135M ({args.llama_rows:,} rows); predicted in "
            "brackets; error = predicted / actual − 1; \"before\": the prompt estimate "
            "at ≈4 characters per token\n\n" + table(rows))
    if missing is not None:
        text += f"\n\nllama.cpp not measured: {missing}"
    averages = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text += (f"\n\nToken counts, not timings; load average at the end {averages} "
             f"({os.cpu_count()} cores). Command: `.venv/bin/python benchmarks/estimate.py`.")
    publish("estimate", text, {"rows": rows, "llama_cpp_missing": missing})
    chart(rows, RESULTS / "estimate.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
