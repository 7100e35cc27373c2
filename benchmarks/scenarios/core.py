"""``core``: latency 0.3 s, no rate limit; a bare client and this package at
max_concurrency 64 in turn (3 rounds: one run's wall on a shared machine is noise), then
a rerun on the same cache."""

from __future__ import annotations

from benchmarks.measure import measure, simulator, temp_dir
from benchmarks.results import Scenario, check
from benchmarks.workload import sample

LATENCY = 0.3
CONCURRENCY = 64
WALL_TARGET_S = 3.5
RERUN_TARGET_S = 0.5
ROUNDS = 3  # bare and pla in turn, each round on its own fresh cache: the summary takes medians


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
    rounds = 1 if quick else ROUNDS
    rows = []
    with simulator(latency=LATENCY) as sim, temp_dir("bench-core-") as tmp:
        texts = work.write_texts(tmp / "texts.json")
        for r in range(rounds):
            tag = f" (round {r + 1})" if rounds > 1 else ""
            cache = tmp / f"cache-{r}"
            rows.append(measure(sim, f"bare aiohttp (reference){tag}", "floor", work,
                                texts_path=texts, bound_s=bound, concurrency=CONCURRENCY))
            rows.append(measure(sim, f"pla k=1 (fresh cache){tag}", "pla", work,
                                texts_path=texts, bound_s=bound, cache_dir=str(cache),
                                settings=settings))
        rerun = measure(sim, "pla rerun (same cache)", "pla", work, texts_path=texts,
                        bound_s=None, cache_dir=str(cache), settings=settings)
    firsts = rows[1::2]
    s.rows = [*rows, rerun]
    s.notes = [
        f"bound = {work.distinct} distinct texts / {CONCURRENCY} in flight × {LATENCY} s "
        f"median latency = {bound:.2f} s (the simulator's latency is log-normal around "
        "that median, so a real run sits a little above it).",
        "wall = the labelling call inside the contender's own fresh process (interpreter "
        "start, imports and reading the data excluded); requests, 429s and tokens are the "
        "simulator's own counters.",
        f"{rounds} round(s), the bare client and this package in turn (the summary pairs "
        "each round's rows and takes the median of the ratios). "
        "The rerun row has no bound: it sends nothing. The reference row is a bare client "
        f"(one pooled aiohttp session, {CONCURRENCY} workers, one request per distinct "
        "text, no cache, retries or label checks): what the latency distribution alone "
        "allows at this concurrency.",
    ]
    walls = sorted(row.wall_s for row in firsts if row.wall_s is not None)
    median_wall = walls[len(walls) // 2] if walls else None
    s.checks = [
        check("first run requests (each round)", f"exactly {work.distinct}",
              max(row.requests or 0 for row in firsts),
              lambda v: v == work.distinct and all(r.requests == v for r in firsts)),
        check("first run wall s (median round)", f"≤ {WALL_TARGET_S}", median_wall,
              lambda v: v <= WALL_TARGET_S),
        check("first run rows lost (all rounds)", "0", sum(r.rows_lost or 0 for r in firsts),
              lambda v: v == 0),
        check("rerun requests", "0", rerun.requests, lambda v: v == 0),
        check("rerun wall s", f"< {RERUN_TARGET_S}", rerun.wall_s,
              lambda v: v < RERUN_TARGET_S),
    ]
    return s

