"""One markdown table from every run in ``benchmarks/results/*.json``: this package's
number beside its floor (a bound, a bare client, or the run without the feature).

    python benchmarks/summary.py [--results DIR]     # or: python benchmarks/run.py --summary

Everything is computed from the JSON files; a field that is missing shows as "-", a file
that cannot be read is named under the table. The fields it relies on:

- `run.py` scenarios (core, rpm, rpm-noheaders, tpm, overhead, queue, memory, faults,
  semantic-rpm): ``rows[]``: ``contender``, ``status``, ``wall_s``, ``bound_s``,
  ``rate_limited``, ``rows_lost``, ``info.load_average_1min``,
  ``info.client.rss.labelled.peak_mb`` (memory); ``bounds[]``: ``label``, ``seconds``.
  Rows of the other clients (named ``bare``, ``openai``, ``lotus``, ``seed``,
  ``sequential`` ...) are floors or left out; the rest are this package. The floor is a
  ``bare ...`` row's wall when the scenario has one, else the row's ``bound_s``, named
  after the row or bound whose seconds it equals.
- ``semantic.json`` (``python -m benchmarks.semantic``): ``slowdown.rows[]``:
  ``semantic``, ``wall s``, ``429s``; the first ``semantic`` value is the run without it.
- ``batch.json``: ``runs[]``: ``run``, ``billed_usd``, ``est_usd``; ``kill``:
  ``batches_submitted_twice``, ``rows``, ``answered``.
- ``servers.json``: ``runs`` (or the top level): {name: ``rows_per_s``, ``lost``}, the
  first one server.
- ``dask_memory.json``: ``rows``, ``rows_per_s``, ``worker_peak_mb[]``, ``client_peak_mb``.
- ``dask_rpm.json``: ``bound_s``, ``runs[]``: ``contender``, ``wall_s``, ``rate_limited``,
  ``lost``.
- ``extract.json``: ``extract``: {name: ``prompt_tokens_per_row``}, a name with "auto"
  against one with "1 row/request".
- ``real_llm.json``: ``concurrency[]`` and ``bare[]``: ``max_concurrency``, ``rows_per_s``.
- ``estimate.json``: ``rows[]``: ``server``, ``k``, ``part``, ``est_prompt``, ``prompt``.
- ``crash_window.json``: ``in_flight``, ``load``, ``runs[]``: ``asked_again``, ``lost``.
- ``cache_write.json``: ``load``, ``results[]``: ``before``, ``pending``, ``write_us``,
  ``merge_us``.
- any file: ``machine`` (``cores``, ``cpu``, ``ram_gb``, ``python``, ``load_average``),
  written by `benchmarks.results`; without one, the machine printing the table is shown.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks.*` importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.results import RESULTS, machine
from benchmarks.summary_lines import READERS, Line, num, scenario_lines, semantic_lines

ORDER = ("core", "rpm", "rpm-noheaders", "tpm", "overhead", "queue", "memory", "scale",
         "faults", "semantic-rpm", "semantic", "batch", "estimate", "crash_window", "cache_write",
         "servers", "dask_rpm", "dask_memory",
         "extract", "real_llm")
HEADER = ("scenario", "compared", "this package", "floor", "× floor", "429s / rows lost",
          "load")


def read(path: Path) -> tuple[list[Line], dict[str, Any] | None, str | None]:
    """(lines, the machine it names, a problem) for one results file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [], None, f"{path.name}: not readable JSON ({exc})"
    if not isinstance(data, dict):
        return [], None, f"{path.name}: not a JSON object"
    name = path.stem
    reader: Callable[[str, dict[str, Any]], list[Line]]
    if isinstance(data.get("rows"), list) and "scenario" in data:
        reader = scenario_lines
        name = str(data["scenario"])
    elif "slowdown" in data:
        reader = semantic_lines
    elif name in READERS:
        reader = READERS[name]
    else:
        return [], None, f"{path.name}: a layout this summary does not know"
    try:
        lines = reader(name, data)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a layout changed
        return [], None, f"{path.name}: {type(exc).__name__}: {exc}"
    found = data.get("machine")
    problem = None if lines else f"{path.name}: no comparison in it"
    return lines, found if isinstance(found, dict) else None, problem


# -- the table ---------------------------------------------------------------------------


def cell(value: Any, fmt: str = "") -> str:
    """A number as the table shows it (``fmt`` for a float, else by its size)."""
    v = num(value)
    if v is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return format(v, fmt or (",.2f" if abs(v) >= 1 else ".3g"))


def machine_line(found: list[dict[str, Any]]) -> str:
    seen = {json.dumps({k: v for k, v in m.items() if k != "load_average"}, sort_keys=True)
            for m in found}
    m = found[0] if found else machine()
    where = "as the first result file records it, load when it was written" if found \
        else "the one printing this table: the results do not record theirs"
    load = m.get("load_average")
    loads = ", ".join(cell(x, ".2f") for x in load) if isinstance(load, list) else "-"
    line = (f"Machine ({where}): {m.get('cores', '-')} cores, {m.get('cpu') or '-'}, "
            f"{cell(m.get('ram_gb'), '.1f')} GB RAM, Python {m.get('python', '-')}, "
            f"load average {loads} (1, 5, 15 min)")
    if len(seen) > 1:
        line += f"; the files name {len(seen)} different machines"
    return line


def summary(results: Path = RESULTS) -> str:
    """The markdown: the machine, then one table of every scenario found in ``results``."""
    files = sorted(results.glob("*.json"),
                   key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER),
                                  p.stem))
    lines: list[Line] = []
    found: list[dict[str, Any]] = []
    problems: list[str] = []
    for path in files:
        got, where, problem = read(path)
        lines += got
        if where is not None:
            found.append(where)
        if problem:
            problems.append(problem)
    out = [f"## Benchmarks: this package against its floor ({results})", "",
           machine_line(found), "",
           "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for ln in lines:
        limited, lost = ln.limited_lost
        out.append("| " + " | ".join([
            ln.scenario, ln.compared, cell(ln.ours), cell(ln.floor), cell(ln.ratio, ".2f"),
            f"{cell(limited)} / {cell(lost)}", cell(ln.load, ".1f")]) + " |")
    if not files:
        out.append(f"\nNo results in {results}: run `python benchmarks/run.py` first.")
    out += [f"- skipped {p}" for p in problems]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/summary.py",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder of the runs' JSON files (default: benchmarks/results)")
    print(summary(parser.parse_args(argv).results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
