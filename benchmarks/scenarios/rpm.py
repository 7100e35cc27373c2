"""``rpm`` (RPM 2,400, burst 1 s, latency 0.3 s) with every contender, and its variants
``rpm-noheaders`` (no ``x-ratelimit-*``/``retry-after`` headers) and ``tpm`` (tokens per
minute bind first), each with this package (k=1 and auto) and openai+semaphore."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from benchmarks import lotus_env
from benchmarks.measure import log, measure, simulator, temp_dir
from benchmarks.results import Row, Scenario
from benchmarks.workload import Workload, sample
from pandas_llm_annotate.config import Settings
from pandas_llm_annotate.simulator import SimulatorHandle

LATENCY = 0.3
RPM = 2400
BURST = 1.0
TPM = 100_000
TPM_RPM = 10_000
CONCURRENCY = 64


def rows_per_request_supported() -> bool:
    """Whether this package's Settings accept ``rows_per_request`` yet (checked live)."""
    return "rows_per_request" in {f.name for f in dataclasses.fields(Settings)}


class Runner:
    """Runs the contenders of one rate-limited scenario against one simulator."""

    def __init__(self, sim: SimulatorHandle, work: Workload, texts: Path, tmp: Path,
                 dedupe_bound: float | None, naive_bound: float | None) -> None:
        self.sim, self.work, self.texts, self.tmp = sim, work, texts, tmp
        self.dedupe_bound, self.naive_bound = dedupe_bound, naive_bound
        self._caches = 0

    def pla(self, name: str, **settings: Any) -> Row:
        if "rows_per_request" in settings and not rows_per_request_supported():
            log(f"{name}: not implemented yet")
            return Row(name, self.work.rows, status="not implemented yet")
        self._caches += 1
        cache = self.tmp / f"cache-{self._caches}"  # a fresh cache for every run
        return measure(self.sim, name, "pla", self.work, texts_path=self.texts,
                       bound_s=self.dedupe_bound, cache_dir=str(cache),
                       settings={"max_concurrency": CONCURRENCY, **settings})

    def other(self, name: str, module: str, **options: Any) -> Row:
        return measure(self.sim, name, module, self.work, texts_path=self.texts,
                       bound_s=self.naive_bound, **options)

    def lotus(self, name: str, **options: Any) -> Row:
        try:
            python = lotus_env.ensure()
        except Exception as exc:  # no LOTUS here: say why and go on
            log(f"{name}: skipped: {exc}")
            return Row(name, self.work.rows, status=f"skipped: {exc}")
        return measure(self.sim, name, "lotus_map", self.work, texts_path=self.texts,
                       bound_s=self.naive_bound, python=python, **options)


def _scenario(name: str, title: str, quick: bool, sim_config: dict[str, Any]) -> Scenario:
    work = sample()
    rate = sim_config["rpm"] / 60
    s = Scenario(name=name, title=title, config={**sim_config, "rows": work.rows,
                                                   "distinct": work.distinct, "quick": quick})
    with simulator(**sim_config) as sim, temp_dir(f"bench-{name}-") as tmp:
        texts = work.write_texts(tmp / "texts.json")
        (tmp / "caches").mkdir()
        dedupe, naive = work.distinct / rate, work.rows / rate
        run = Runner(sim, work, texts, tmp / "caches", dedupe, naive)
        if name == "rpm":
            if quick:
                log("sequential: skipped in --quick (takes ~5 minutes)")
                s.rows.append(Row("sequential", work.rows,
                                  status="skipped in --quick (~5 min)"))
            else:
                s.rows.append(run.other("sequential", "sequential", timeout_s=1800))
            s.rows.append(run.other("seed", "seed"))
        s.rows.append(run.other("openai+semaphore", "openai_sem"))
        if name == "rpm":
            s.rows.append(run.lotus("lotus rate_limit=2400", rate_limit=RPM))
            s.rows.append(run.lotus("lotus default"))
        s.rows.append(run.pla("pla k=1"))
        s.rows.append(run.pla("pla auto", rows_per_request="auto"))
    s.bounds = [("bound, deduped (600 requests)", dedupe),
                ("bound, not deduped (1,000 requests)", naive)]
    s.notes = [
        f"bound = requests / ({sim_config['rpm']:,} RPM / 60 = {rate:.0f} per s): "
        f"{work.distinct} / {rate:.0f} = {dedupe:.1f} s for contenders that dedupe (pla), "
        f"{work.rows:,} / {rate:.0f} = {naive:.1f} s for those that send every row "
        "(sequential, seed, openai+semaphore, lotus); each row's ratio is to its own "
        f"bound. A burst of {BURST:g} s lets the first {rate * BURST:.0f} through at once, "
        f"so the exact floor is {BURST:g} s less plus one latency.",
        *COMMON_NOTES,
    ]
    return s


COMMON_NOTES = [
    "wall = the labelling call inside the contender's own fresh process (interpreter "
    "start, imports and reading the data excluded); requests, 429s and tokens "
    "(prompt + completion of answered requests) are the simulator's counters; retries are "
    "the client's own count (pla: its report; openai: requests it re-sent; seed and "
    "sequential retry nothing), '-' where the client does not tell.",
    "rows lost = rows without one of the labels; = unpacked = rows whose answer equals the "
    "simulator's answer to that text asked alone with the package's prompt.",
    "A ratio below 1 from a contender that lost rows is not speed: it dropped work (orange "
    "bars in the chart).",
]


def run(quick: bool) -> Scenario:
    return _scenario(
        "rpm", f"RPM {RPM:,} (burst {BURST:g} s), latency {LATENCY} s, 1,000 rows "
        "(600 distinct)", quick,
        {"latency": LATENCY, "rpm": RPM, "burst": BURST},
    )


def run_noheaders(quick: bool) -> Scenario:
    return _scenario(
        "rpm-noheaders", f"RPM {RPM:,} (burst {BURST:g} s), latency {LATENCY} s, no rate "
        "headers (no x-ratelimit-*, retry-after)", quick,
        {"latency": LATENCY, "rpm": RPM, "burst": BURST, "rate_headers": False},
    )


def run_tpm(quick: bool) -> Scenario:
    """Tokens bind first; the bound comes from the k=1 run's token count."""
    work = sample()
    config = {"latency": LATENCY, "rpm": TPM_RPM, "tpm": TPM, "burst": BURST}
    s = Scenario(name="tpm", title=f"TPM {TPM:,} and RPM {TPM_RPM:,} (burst {BURST:g} s), "
                 f"latency {LATENCY} s: tokens bind first", config={**config, "quick": quick})
    per_s = TPM / 60
    with simulator(**config) as sim, temp_dir("bench-tpm-") as tmp:
        texts = work.write_texts(tmp / "texts.json")
        (tmp / "caches").mkdir()
        run = Runner(sim, work, texts, tmp / "caches", None, None)
        k1 = run.pla("pla k=1")
        bound = k1.tokens / per_s if k1.ok and k1.tokens else None
        if bound is not None:
            run.dedupe_bound = k1.bound_s = bound
            run.naive_bound = bound * work.rows / work.distinct
        auto = run.pla("pla auto", rows_per_request="auto")
        oai = run.other("openai+semaphore", "openai_sem")
    s.rows = [k1, auto, oai]
    if bound is None or k1.tokens is None:
        s.notes.append("no bound: the pla k=1 run, which it is computed from, failed.")
    else:
        # What the simulator charges on arrival: prompt + max_tokens per answered request.
        server = k1.info["server"]
        admission = (server["prompt_tokens"] + server["ok"] * work.max_tokens) / per_s
        s.bounds = [("bound from k=1 tokens", bound),
                    ("the same, not deduped (1,000 rows)", run.naive_bound or bound),
                    ("k=1 as the simulator charges it (prompt + max_tokens)", admission)]
        s.notes += [
            f"bound = tokens of the pla k=1 run ({k1.tokens:,}, simulator prompt + "
            f"completion) / ({TPM:,} TPM / 60 = {per_s:.0f} per s) = {bound:.1f} s; "
            f"openai+semaphore, which asks all {work.rows:,} rows, is held to that × "
            f"{work.rows}/{work.distinct} = {run.naive_bound:.1f} s.",
            f"The simulator charges each request prompt + max_tokens ({work.max_tokens}) on "
            f"arrival, not prompt + completion, so what it admits for the k=1 run is nearer "
            f"{admission:.1f} s; the bound above is the one asked for and is optimistic.",
        ]
    s.notes += COMMON_NOTES
    return s
