"""``memory``: a million rows (200,000 distinct) at latency 0 in a child process; RSS after
imports, after building the DataFrame and the peak while labelling."""

from __future__ import annotations

from benchmarks.measure import measure, simulator, temp_dir
from benchmarks.results import Row, Scenario
from benchmarks.workload import generated

ROWS = 1_000_000
QUICK_ROWS = 200_000
REPEAT = 5
CONCURRENCY = 64


def rss_table(row: Row) -> str:
    rss = row.info.get("client", {}).get("rss")
    if not rss:
        return ""
    def mb(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"
    lines = [
        "| stage | peak RSS MB (ru_maxrss) | RSS now MB |", "|---|---|---|",
        f"| after imports | {mb(rss['imports_mb'])} | {mb(rss['imports_now_mb'])} |",
        f"| after building the DataFrame | {mb(rss['dataframe_mb'])} | "
        f"{mb(rss['dataframe_now_mb'])} |",
        f"| after labelling | {mb(rss['peak_mb'])} | {mb(rss['after_now_mb'])} |",
        f"| DataFrame alone (after build − after imports) | "
        f"{mb(rss['dataframe_now_mb'] - rss['imports_now_mb'])} | |",
        f"| growth while labelling (peak − after build) | "
        f"{mb(rss['peak_mb'] - rss['dataframe_mb'])} | |",
    ]
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
    row.rows_lost = row.info.get("client", {}).get("rows_lost")
    s.rows = [row]
    s.extra_tables = [t for t in (rss_table(row),) if t]
    rss = row.info.get("client", {}).get("rss")
    if rss:
        s.bars = [("after imports", rss["imports_mb"]),
                  ("after building DataFrame", rss["dataframe_mb"]),
                  ("peak after labelling", rss["peak_mb"])]
        s.ylabel = "peak RSS, MB"
    s.notes = [
        "no bound: this scenario measures memory, not speed; the chart shows RSS.",
        "peak RSS is resource.getrusage(RUSAGE_SELF).ru_maxrss of the contender process; "
        "'RSS now' is VmRSS from /proc at that moment. The texts are built in the child "
        "(the list of strings is part of the 'building the DataFrame' peak).",
    ]
    if quick:
        s.notes.insert(0, f"--quick: {QUICK_ROWS:,} rows instead of {ROWS:,}.")
    return s
