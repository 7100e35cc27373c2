"""``python benchmarks/run.py [--quick] [--only NAME,...]``: run the scenarios, print
markdown tables, write ``benchmarks/results/<scenario>.{md,json,png}``."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from benchmarks.child import OFFLINE_ENV
from benchmarks.results import RESULTS, Scenario, write
from benchmarks.scenarios import core, faults, memory, overhead, queue, rpm, scale, semantic_rpm
from benchmarks.summary import summary

SCENARIOS: dict[str, Callable[[bool], Scenario]] = {
    "core": core.run,
    "rpm": rpm.run,
    "rpm-noheaders": rpm.run_noheaders,
    "tpm": rpm.run_tpm,
    "queue": queue.run,
    "overhead": overhead.run,
    "memory": memory.run,
    "scale": scale.run,
    "faults": faults.run,
    "semantic-rpm": semantic_rpm.run,
}

ON_REQUEST = ("scale",)  # 10,000,000 rows: run only when named in --only


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="skip the ~5 min sequential contender, shrink the memory run")
    parser.add_argument("--summary", action="store_true",
                        help="run nothing: print one table of every result in "
                             "benchmarks/results/ (see benchmarks/summary.py)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated scenarios out of: {', '.join(SCENARIOS)} "
                             f"({', '.join(ON_REQUEST)} only when named: ~30 min)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or [
        n for n in SCENARIOS if n not in ON_REQUEST]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.summary:
        print(summary(), end="")
        return 0
    os.environ.update(OFFLINE_ENV)  # this process too: nothing phones home
    mode = "quick" if args.quick else "full"
    print(f"# pandas_llm_annotate benchmarks ({mode} run: {', '.join(args.names)})\n")
    for name in args.names:
        start = time.monotonic()
        load_before = os.getloadavg()[0]
        scenario = SCENARIOS[name](args.quick)
        scenario.notes.append(
            f"machine: {os.cpu_count()} cores; 1-min load average {load_before:.1f} at the "
            f"start, {os.getloadavg()[0]:.1f} at the end (above ~2, other work shared the "
            "cores and the walls are inflated)."
        )
        refused = {r.contender: r.info.get("refused_outbound") for r in scenario.rows}
        scenario.notes += [
            f"network guard: {who} tried {len(what)} non-loopback connection(s)/lookup(s), "
            f"all refused: {', '.join(sorted(set(what)))[:200]}"
            for who, what in refused.items() if what
        ]
        text = write(scenario)
        print(text)
        print(f"_{name}: {time.monotonic() - start:.0f} s in all; results in "
              f"{RESULTS.relative_to(RESULTS.parent.parent)}/{name}.(md|json|png)_\n",
              flush=True)
    if len(args.names) > 1:  # every result so far, this run's and earlier ones
        print(summary(), end="")
    return 0
