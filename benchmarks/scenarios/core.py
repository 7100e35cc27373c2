"""``core``: latency 0.3 s, no rate limit; this package at max_concurrency 64, then a rerun
on the same cache."""

from __future__ import annotations

from benchmarks.measure import measure, simulator, temp_dir
from benchmarks.results import Scenario, check
from benchmarks.workload import sample

LATENCY = 0.3
CONCURRENCY = 64
WALL_TARGET_S = 3.5
RERUN_TARGET_S = 0.5


def run(quick: bool) -> Scenario:
    work = sample()
    bound = work.distinct / CONCURRENCY * LATENCY
    s = Scenario(
        name="core",
        title=f"latency {LATENCY} s, no rate limit, {work.rows:,} rows "
              f"({work.distinct:,} distinct), max_concurrency {CONCURRENCY}",
        config={"latency": LATENCY, "concurrency": CONCURRENCY, "rows": work.rows,
                "distinct": work.distinct},
        bounds=[("bound: distinct/concurrency × latency", bound)],
    )
    settings = {"max_concurrency": CONCURRENCY}
    with simulator(latency=LATENCY) as sim, temp_dir("bench-core-") as tmp:
        texts = work.write_texts(tmp / "texts.json")
        cache = tmp / "cache"
        floor = measure(sim, "bare aiohttp (reference)", "floor", work, texts_path=texts,
                        bound_s=bound, concurrency=CONCURRENCY)
        first = measure(sim, "pla k=1 (fresh cache)", "pla", work, texts_path=texts,
                        bound_s=bound, cache_dir=str(cache), settings=settings)
        rerun = measure(sim, "pla rerun (same cache)", "pla", work, texts_path=texts,
                        bound_s=None, cache_dir=str(cache), settings=settings)
    s.rows = [floor, first, rerun]
    s.notes = [
        f"bound = {work.distinct} distinct texts / {CONCURRENCY} in flight × {LATENCY} s "
        f"median latency = {bound:.2f} s (the simulator's latency is log-normal around "
        "that median, so a real run sits a little above it).",
        "wall = the labelling call inside the contender's own fresh process (interpreter "
        "start, imports and reading the data excluded); requests, 429s and tokens are the "
        "simulator's own counters.",
        "The rerun row has no bound: it sends nothing. The reference row is a bare client "
        f"(one pooled aiohttp session, {CONCURRENCY} workers, one request per distinct "
        "text, no cache, retries or label checks): what the latency distribution alone "
        "allows at this concurrency.",
    ]
    s.checks = [
        check("first run requests", f"exactly {work.distinct}", first.requests,
              lambda v: v == work.distinct),
        check("first run wall s", f"≤ {WALL_TARGET_S}", first.wall_s,
              lambda v: v <= WALL_TARGET_S),
        check("first run rows lost", "0", first.rows_lost, lambda v: v == 0),
        check("rerun requests", "0", rerun.requests, lambda v: v == 0),
        check("rerun wall s", f"< {RERUN_TARGET_S}", rerun.wall_s,
              lambda v: v < RERUN_TARGET_S),
    ]
    return s

