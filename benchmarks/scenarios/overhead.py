"""``overhead``: latency 0, no limits, so only client cost shows: 20,000 distinct rows at
k=1 and max_concurrency 64, then a fully cached rerun of 100,000 rows (the same texts 5×).
The bound is a bare aiohttp client sending the same 20,000 requests."""

from __future__ import annotations

from benchmarks.measure import measure, simulator, temp_dir
from benchmarks.results import Scenario, check
from benchmarks.workload import generated

DISTINCT = 20_000
REPEAT = 5
CONCURRENCY = 64
ROWS_PER_S_TARGET = 2_000
RERUN_TARGET_S = 1.0


def run(quick: bool) -> Scenario:
    first_work = generated(DISTINCT, DISTINCT)
    rerun_work = generated(DISTINCT, DISTINCT * REPEAT)
    s = Scenario(
        name="overhead",
        title=f"latency 0, no limits: {DISTINCT:,} distinct rows, then a cached rerun of "
              f"{DISTINCT * REPEAT:,} rows",
        config={"latency": 0, "distinct": DISTINCT, "rerun_rows": DISTINCT * REPEAT,
                "concurrency": CONCURRENCY, "quick": quick},
    )
    settings = {"max_concurrency": CONCURRENCY}
    with simulator(latency=0.0) as sim, temp_dir("bench-overhead-") as tmp:
        floor = measure(sim, "bare aiohttp (bound)", "floor", first_work, texts_path=None,
                        bound_s=None, concurrency=CONCURRENCY)
        bound = floor.wall_s if floor.ok else None
        floor.bound_s = bound
        cache = str(tmp / "cache")
        first = measure(sim, f"pla k=1 ({DISTINCT:,} rows)", "pla", first_work,
                        texts_path=None, bound_s=bound, cache_dir=cache, settings=settings)
        rerun = measure(sim, f"pla cached rerun ({DISTINCT * REPEAT:,} rows)", "pla",
                        rerun_work, texts_path=None, bound_s=None, cache_dir=cache,
                        settings=settings)
    s.rows = [floor, first, rerun]
    if bound is not None:
        s.bounds = [("bound: bare aiohttp, same requests", bound)]
    s.notes = [
        f"bound = wall of a bare client (one pooled aiohttp session, {CONCURRENCY} workers, "
        "no dedupe, cache, retries or label checks) sending the same "
        f"{DISTINCT:,} requests to the same simulator: what the server and loopback carry "
        "on this machine" + (f" ({bound:.2f} s)." if bound else " (it failed: no bound)."),
        "The cached rerun sends nothing, so it has no bound; its wall is reading 20,000 "
        "answers from the SQLite cache and broadcasting them to 100,000 rows.",
        "wall = the labelling call inside the contender's own fresh process (imports and "
        "building the texts excluded).",
    ]
    s.checks = [
        check(f"pla k=1 rows/s ({DISTINCT:,} distinct rows)", f"≥ {ROWS_PER_S_TARGET:,}",
              first.rows_per_s, lambda v: v >= ROWS_PER_S_TARGET),
        check("pla k=1 rows lost", "0", first.rows_lost, lambda v: v == 0),
        check(f"cached rerun wall s ({DISTINCT * REPEAT:,} rows)", f"< {RERUN_TARGET_S:g}",
              rerun.wall_s, lambda v: v < RERUN_TARGET_S),
        check("cached rerun requests", "0", rerun.requests, lambda v: v == 0),
    ]
    return s
