"""``memory``: a million rows (200,000 distinct) at latency 0 in a child process; RSS after
imports, after building the DataFrame and the peak while labelling."""

from __future__ import annotations

from benchmarks.measure import measure, simulator, temp_dir
from benchmarks.results import Scenario
from benchmarks.workload import generated

ROWS = 1_000_000
QUICK_ROWS = 200_000
REPEAT = 5
CONCURRENCY = 64


STAGES = (("imports", "after imports"), ("dataframe", "after building the DataFrame"),
          ("labelled", "after labelling"))


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def rss_table(rss: dict[str, dict[str, float | None]]) -> str:
    lines = ["| stage | peak RSS MB (VmHWM) | RSS now MB (VmRSS) | ru_maxrss MB |",
             "|---|---|---|---|"]
    for key, label in STAGES:
        r = rss[key]
        lines.append(f"| {label} | {_mb(r['peak_mb'])} | {_mb(r['now_mb'])} | "
                     f"{_mb(r['ru_maxrss_mb'])} |")
    imp, df, done = (rss[k]["peak_mb"] for k, _ in STAGES)
    if imp is not None and df is not None and done is not None:
        lines.append(f"| building the DataFrame (peak after build − after imports) | "
                     f"{_mb(df - imp)} | | |")
        lines.append(f"| labelling (peak after labelling − peak after build) | "
                     f"{_mb(done - df)} | | |")
    return "\n".join(lines)


def run(quick: bool) -> Scenario:
    rows = QUICK_ROWS if quick else ROWS
    work = generated(rows // REPEAT, rows)
    s = Scenario(
        name="memory",
        title=f"{rows:,} rows ({rows // REPEAT:,} distinct), latency 0, pla k=1, "
              f"max_concurrency {CONCURRENCY}",
        config={"rows": rows, "distinct": rows // REPEAT, "quick": quick, "latency": 0},
    )
    with simulator(latency=0.0) as sim, temp_dir("bench-memory-") as tmp:
        row = measure(sim, f"pla k=1 ({rows:,} rows)", "memory", work, texts_path=None,
                      bound_s=None, timeout_s=1800, score=False, cache_dir=str(tmp / "c"),
                      settings={"max_concurrency": CONCURRENCY})
    s.rows = [row]
    rss = row.info.get("client", {}).get("rss")
    if rss:
        s.extra_tables = [rss_table(rss)]
        s.bars = [(label, rss[key]["peak_mb"] or 0.0) for key, label in STAGES]
        s.ylabel = "peak RSS (VmHWM), MB"
    s.notes = [
        "no bound: this scenario measures memory, not speed; the chart shows RSS.",
        "peak RSS = VmHWM of the contender process (/proc/self/status), RSS now = VmRSS, "
        "each after gc.collect(). ru_maxrss (resource.getrusage(RUSAGE_SELF)) is shown too "
        "but reads high for small numbers: Linux carries the spawning parent's peak RSS "
        "across fork + exec into the child's ru_maxrss.",
        "The texts are built in the child (repeated rows share one string object, as "
        "after a merge or a broadcast; a CSV read would make one object per row): the "
        "list is part of the 'building the DataFrame' peak.",
    ]
    if quick:
        s.notes.insert(0, f"--quick: {QUICK_ROWS:,} rows instead of {ROWS:,}.")
    return s
