"""``faults``: latency 0.05 s, no limits, random faults (HTTP 500s, dropped connections,
truncated JSON) on 0 %, 5 % and 20 % of requests. Isolated faults are not overload: the
run should keep most of the fault-free throughput and lose no row."""

from __future__ import annotations

from benchmarks.measure import measure, simulator, temp_dir
from benchmarks.results import Row, Scenario, check
from benchmarks.workload import generated

LATENCY = 0.05
DISTINCT = 3_000
CONCURRENCY = 64
RATES = (0.0, 0.05, 0.20)
KINDS = ("error", "reset", "malformed")  # no "hang": a 30 s answer is not a random fault
KEEP_TARGET = 0.5  # at 20 % faults, at least this share of the fault-free rows/s


def run(quick: bool) -> Scenario:
    work = generated(DISTINCT, DISTINCT)
    s = Scenario(
        name="faults",
        title=f"latency {LATENCY} s, no limits, {DISTINCT:,} distinct rows, "
              f"max_concurrency {CONCURRENCY}; faults ({', '.join(KINDS)}) on 0/5/20 % of "
              "requests",
        config={"latency": LATENCY, "distinct": DISTINCT, "concurrency": CONCURRENCY,
                "rates": list(RATES), "kinds": list(KINDS), "quick": quick},
        ylabel="rows/s",
    )
    rows: list[Row] = []
    with temp_dir("bench-faults-") as tmp:
        for i, rate in enumerate(RATES):
            with simulator(latency=LATENCY, faults=rate, fault_kinds=KINDS, seed=i) as sim:
                rows.append(measure(
                    sim, f"pla faults {rate:.0%}", "pla", work, texts_path=None,
                    bound_s=None, cache_dir=str(tmp / f"cache-{i}"),
                    settings={"max_concurrency": CONCURRENCY},
                ))
    clean = rows[0].rows_per_s
    for row in rows:
        row.bound_s = rows[0].wall_s if rows[0].ok else None  # × bound = × the fault-free run
    s.rows = rows
    s.bars = [(r.contender, r.rows_per_s or 0.0) for r in rows]
    s.extra_tables = [_kept_table(rows, clean)]
    s.notes = [
        "× bound = wall / the fault-free run's wall; kept = rows/s / the fault-free rows/s.",
        "Faults are drawn by the simulator per request (seeded): HTTP 500, a connection "
        "reset before the answer, or a 200 whose JSON is cut in half; each costs that "
        "request a retry with backoff (max_retries 6, the default).",
        "rows lost = rows without one of the labels (a row fails only after 7 faults in a "
        "row: 0.2^7 ≈ 1e-5 per row at 20 %).",
    ]
    worst = rows[-1].rows_per_s
    s.checks = [
        *(check(f"{r.contender} rows lost", "0", r.rows_lost, lambda v: v == 0) for r in rows),
        check("rows/s kept at 20 % faults", f"≥ {KEEP_TARGET:.0%} of fault-free",
              None if worst is None or not clean else worst / clean,
              lambda v: v >= KEEP_TARGET),
    ]
    return s


def _kept_table(rows: list[Row], clean: float | None) -> str:
    lines = ["| faults | rows/s | kept | requests | retries | rows lost |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        rate = r.rows_per_s
        kept = "-" if rate is None or not clean else f"{rate / clean:.0%}"
        shown = "-" if rate is None else f"{rate:,.0f}"
        lines.append(f"| {r.contender} | {shown} | {kept} | {r.requests or '-'} | "
                     f"{r.retries if r.retries is not None else '-'} | "
                     f"{r.rows_lost if r.rows_lost is not None else '-'} |")
    return "\n".join(lines)
