"""The summary's rows: one reader per results layout (see `summary.py`'s docstring for
the fields each relies on), each turning a run's JSON into `Line`s: ours beside a floor."""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OTHERS = ("bare", "openai", "lotus", "seed", "sequential")  # the other clients' rows


@dataclass(frozen=True)
class Line:
    """One row of the table. ``ratio`` is ours / floor, computed when both are numbers."""

    scenario: str
    compared: str
    ours: float | str | None
    floor: float | None = None
    limited_lost: tuple[Any, Any] = (None, None)
    load: Any = None
    of_rounds: float | None = None  # the median of several rounds' ratios, when merged

    @property
    def ratio(self) -> float | None:
        if self.of_rounds is not None:
            return self.of_rounds
        ours = num(self.ours)
        return ours / self.floor if ours is not None and self.floor else None


def num(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (bools, strings, null)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def get(data: Any, *path: str | int) -> Any:
    """``data[path[0]][path[1]]...``, or None where any step is missing."""
    for step in path:
        if isinstance(step, int) and isinstance(data, list) and -len(data) <= step < len(data):
            data = data[step]
        elif isinstance(step, str) and isinstance(data, dict):
            data = data.get(step)
        else:
            return None
    return data


def dicts(value: Any) -> list[dict[str, Any]]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


# -- one reader per layout ------------------------------------------------------------


def scenario_lines(name: str, data: dict[str, Any]) -> list[Line]:
    rows = dicts(data.get("rows"))
    bares = [r for r in rows if str(r.get("contender", "")).lower().startswith("bare")
             and num(r.get("wall_s"))]
    bare_of_round = {m.group(0): r for r in bares
                     if (m := ROUND.search(str(r.get("contender", ""))))}
    named = {round(s, 6): str(get(b, "label")) for b in dicts(data.get("bounds"))
             if (s := num(b.get("seconds"))) is not None}
    named.update({round(w, 6): str(r.get("contender")) for r in rows
                  if (w := num(r.get("wall_s"))) is not None})
    out = []
    for r in rows:
        who = str(r.get("contender", "?"))
        if who.lower().startswith(OTHERS):
            continue
        extra = {"limited_lost": (r.get("rate_limited"), r.get("rows_lost")),
                 "load": get(r, "info", "load_average_1min")}
        if r.get("status", "ok") != "ok":
            out.append(Line(name, who, str(r.get("status")), **extra))
            continue
        peak = num(get(r, "info", "client", "rss", "labelled", "peak_mb"))
        if peak is not None:
            out.append(Line(name, f"{who}: peak RSS MB (no floor)", peak, **extra))
        wall, bound = num(r.get("wall_s")), num(r.get("bound_s"))
        tag = ROUND.search(who)  # a round's rows are compared with that round's bare client
        bare = bare_of_round.get(tag.group(0)) if tag else (bares[0] if bares else None)
        if bare is not None and bound is not None:
            floor, what = num(bare.get("wall_s")), str(bare.get("contender"))
        elif bound is not None:
            floor, what = bound, named.get(round(bound, 6), "bound")
        else:
            floor, what = None, "no floor"
        if what == who:
            continue  # the floor itself
        out.append(Line(name, f"{who}: wall s vs {what}", wall, floor, **extra))
    return merge_rounds(out)


ROUND = re.compile(r" \(round \d+\)")


def merge_rounds(lines: list[Line]) -> list[Line]:
    """Lines that differ only in "(round N)" become one: the medians of the numbers and
    of the ratios, the sums of 429s and rows lost, the highest load."""
    groups: dict[str, list[Line]] = {}
    for ln in lines:
        groups.setdefault(ROUND.sub("", ln.compared), []).append(ln)
    out = []
    for compared, same in groups.items():
        if len(same) == 1:
            out.append(same[0])
            continue
        loads = [v for ln in same if (v := num(ln.load)) is not None]
        out.append(Line(same[0].scenario, f"{compared} (median of {len(same)} rounds)",
                        _median([num(ln.ours) for ln in same]),
                        _median([ln.floor for ln in same]),
                        (_total([ln.limited_lost[0] for ln in same]),
                         _total([ln.limited_lost[1] for ln in same])),
                        max(loads, default=None), _median([ln.ratio for ln in same])))
    return out


def _median(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def _total(values: list[Any]) -> int | None:
    found = [v for value in values if (v := num(value)) is not None]
    return int(sum(found)) if found else None


def semantic_lines(name: str, data: dict[str, Any]) -> list[Line]:
    rows = dicts(get(data, "slowdown", "rows"))
    walls: dict[str, list[float]] = {}
    limited: dict[str, float] = {}
    for r in rows:
        label, wall = str(r.get("semantic")), num(r.get("wall s"))
        if wall is not None:
            walls.setdefault(label, []).append(wall)
        limited[label] = limited.get(label, 0) + (num(r.get("429s")) or 0)
    medians = {label: statistics.median(w) for label, w in walls.items()}
    if not medians:
        return []
    off_label = next(iter(medians))
    return [Line(name, f"semantic {label}: median wall s vs {off_label}", m,
                 medians[off_label], (int(limited[label]), None))
            for label, m in medians.items() if label != off_label]


def batch_lines(name: str, data: dict[str, Any]) -> list[Line]:
    out = [Line(name, f"{r.get('run')}: billed $ vs the estimate", num(r.get("billed_usd")),
                num(r.get("est_usd"))) for r in dicts(data.get("runs"))]
    kill = data.get("kill")
    if isinstance(kill, dict):
        rows, answered = num(kill.get("rows")), num(kill.get("answered"))
        lost = int(rows - answered) if rows is not None and answered is not None else None
        out.append(Line(name, "SIGKILL mid-batch, rerun: batches submitted twice (floor 0)",
                        num(kill.get("batches_submitted_twice")), None, (None, lost)))
    return out


def servers_lines(name: str, data: dict[str, Any]) -> list[Line]:
    found = data.get("runs", data)  # before the machine was recorded: the runs alone
    runs = [(str(k), v) for k, v in found.items() if isinstance(v, dict) and "rows_per_s" in v] \
        if isinstance(found, dict) else []
    if not runs:
        return []
    first, one = runs[0]
    return [Line(name, f"{run}: rows/s vs {first} (higher is better)", num(r.get("rows_per_s")),
                 num(one.get("rows_per_s")), (None, r.get("lost"))) for run, r in runs[1:]]


def dask_lines(name: str, data: dict[str, Any]) -> list[Line]:
    bound = num(data.get("bound_s"))
    return [Line(name, f"{r.get('contender')}: wall s vs bound (distinct / rate)",
                 num(r.get("wall_s")), bound, (r.get("rate_limited"), r.get("lost")))
            for r in dicts(data.get("runs"))]


def dask_memory_lines(name: str, data: dict[str, Any]) -> list[Line]:
    rows, load = f"{num(data.get('rows')) or 0:,.0f} rows", get(data, "load_average", 0, 0)
    workers = [w for x in (data.get("worker_peak_mb") or []) if (w := num(x)) is not None]
    return [Line(name, f"{rows}: rows/s (no floor)", num(data.get("rows_per_s")), load=load),
            Line(name, f"{rows}: largest worker's peak RSS MB (no floor)",
                 max(workers, default=None), load=load),
            Line(name, f"{rows}: client's peak RSS MB (no floor)",
                 num(data.get("client_peak_mb")), load=load)]


def extract_lines(name: str, data: dict[str, Any]) -> list[Line]:
    found = data.get("extract")
    runs: dict[str, Any] = found if isinstance(found, dict) else {}
    packed = next((v for k, v in runs.items() if "auto" in k and isinstance(v, dict)), None)
    single = next((v for k, v in runs.items() if "1 row/request" in k and "constrained" in k
                   and isinstance(v, dict)), None)
    if packed is None or single is None:
        return []
    return [Line(name, 'extract prompt tokens/row: rows_per_request="auto" vs 1 row/request',
                 num(packed.get("prompt_tokens_per_row")),
                 num(single.get("prompt_tokens_per_row")), load=get(data, "load", 0))]


def real_llm_lines(name: str, data: dict[str, Any]) -> list[Line]:
    bare = {r.get("max_concurrency"): num(r.get("rows_per_s")) for r in dicts(data.get("bare"))}
    return [Line(name, f"max_concurrency {r.get('max_concurrency')}: rows/s vs a bare client "
                       "(higher is better)", num(r.get("rows_per_s")),
                 bare.get(r.get("max_concurrency")), load=get(data, "load", 0))
            for r in dicts(data.get("concurrency"))]


def _int(value: Any) -> int | None:
    n = num(value)
    return None if n is None else int(n)


def estimate_lines(name: str, data: dict[str, Any]) -> list[Line]:
    return [Line(name, f"{r.get('server')} k={r.get('k')}, {r.get('part')}: estimated vs "
                       "actual prompt tokens", _int(r.get("est_prompt")), _int(r.get("prompt")))
            for r in dicts(data.get("rows")) if "first" in str(r.get("part"))
            or str(r.get("part")).rsplit(", ", 1)[-1] == "calibrated"]


def crash_lines(name: str, data: dict[str, Any]) -> list[Line]:
    runs = dicts(data.get("runs"))
    again = [num(r.get("asked_again")) for r in runs]
    if not runs or any(a is None for a in again):
        return []
    lost = sum(int(num(r.get("lost")) or 0) for r in runs)
    return [Line(name, f"SIGKILL then rerun ({len(runs)} kills): answers asked again, worst, "
                       "vs requests in flight", _int(max(a for a in again if a is not None)),
                 _int(data.get("in_flight")), (None, lost), load=get(data, "load"))]


def cache_write_lines(name: str, data: dict[str, Any]) -> list[Line]:
    out = []
    for r in dicts(data.get("results")):
        if r.get("pending"):
            direct = next((x for x in dicts(data.get("results"))
                           if x.get("before") == r.get("before") and not x.get("pending")), {})
            total = (num(r.get("write_us")) or 0.0) + (num(r.get("merge_us")) or 0.0)
            out.append(Line(name, f"file with {_int(r.get('before')):,} answers: writer µs "
                                  "per answer, appended + merged vs into the index",
                            total, num(direct.get("write_us")), (None, None),
                            load=get(data, "load")))
    return out


READERS: dict[str, Callable[[str, dict[str, Any]], list[Line]]] = {
    "batch": batch_lines, "servers": servers_lines, "dask_rpm": dask_lines,
    "dask_memory": dask_memory_lines, "extract": extract_lines, "real_llm": real_llm_lines,
    "estimate": estimate_lines, "crash_window": crash_lines, "cache_write": cache_write_lines,
}
