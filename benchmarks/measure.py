"""Run one contender against a scenario's simulator and turn what it did into a `Row`."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.child import ContenderError, run_contender
from benchmarks.results import Row
from benchmarks.workload import Workload
from pandas_llm_annotate.simulator import SimulatorHandle, serve


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextmanager
def simulator(**config: Any) -> Iterator[SimulatorHandle]:
    """A simulator in its own process (so it does not share the client's GIL)."""
    sim = serve(subprocess=True, **config)
    log(f"simulator {sim.base_url} {config}")
    try:
        yield sim
    finally:
        sim.close()


def settle(sim: SimulatorHandle) -> None:
    """Let the rate-limit buckets refill so a contender does not pay for the previous
    one, then zero the counters."""
    cfg = sim.config
    if cfg.rpm or cfg.tpm:
        time.sleep(cfg.burst + 0.5)
    sim.reset_stats()


def measure(sim: SimulatorHandle, name: str, module: str, work: Workload, *,
            texts_path: Path | None, bound_s: float | None, python: str | Path | None = None,
            timeout_s: float = 900.0, score: bool = True, **options: Any) -> Row:
    """Run ``benchmarks.contenders.<module>`` in a fresh child; count what the server saw."""
    settle(sim)
    log(f"{name} ...")
    spec = work.spec(sim.base_url, texts_path, **options)
    if texts_path is None:
        spec["generate"] = {"distinct": work.distinct, "rows": work.rows}
    row = Row(contender=name, rows=work.rows, bound_s=bound_s)
    try:
        child = run_contender(module, spec, python=python, timeout_s=timeout_s)
    except ContenderError as exc:
        row.status = f"failed: {exc}"
        log(f"{name}: {row.status}")
        return row
    stats = sim.stats()
    res = child.result
    row.wall_s = res["wall_s"]
    row.requests = stats["requests"]
    row.rate_limited = stats["rate_limited"]
    row.tokens = stats["prompt_tokens"] + stats["completion_tokens"]
    row.retries = res.get("retries")
    row.info = {
        "client": res.get("info", {}),
        "server": {k: v for k, v in stats.items() if k != "texts"},
        "server_distinct_texts": len(stats.get("texts", {})),
        "refused_outbound": child.refused,
        "load_average_1min": os.getloadavg()[0],
    }
    if child.refused:
        log(f"{name}: the guard refused {len(child.refused)} outbound attempt(s): "
            f"{child.refused[:3]}")
    answers = res.get("answers")
    if score and answers is not None:
        row.rows_lost, row.same_as_unpacked = work.score(answers)
    elif "rows_lost" in res:
        row.rows_lost = res["rows_lost"]
    log(f"{name}: {row.wall_s:.2f} s, {row.requests} requests, {row.rate_limited} 429s, "
        f"{row.rows_lost} rows lost")
    return row


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)
