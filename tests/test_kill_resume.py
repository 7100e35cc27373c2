"""A run killed (SIGKILL) or interrupted (Ctrl-C) keeps what it paid for: the rerun
asks only for what is missing."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers.checks import wait_for
from helpers.child import ctrl_c, interruptible, start
from helpers.expected import sim_answer

import pandas_llm_annotate as pla
from pandas_llm_annotate.simulator import SimulatorHandle, serve

# Answers in the cache: merged ones and those a run appended and has not merged yet.
CACHED_ROWS = "SELECT count(*) FROM (SELECT key FROM answers UNION SELECT key FROM pending)"

pytestmark = pytest.mark.slow

LABELS = ["card_lost", "card_arrival", "refund", "other"]
DISTINCT = 300
CONCURRENCY = 8
TEXTS = [f"resume test {i}: " + ["I lost my card", "my card arrival", "refund please"][i % 3]
         for i in range(DISTINCT)]

CHILD = interruptible(
    """
    import json, sys
    import pandas as pd
    import pandas_llm_annotate as pla

    base_url, cache, texts_file, concurrency = sys.argv[1:5]
    with open(texts_file) as f:
        texts = json.load(f)
    df = pd.DataFrame({"text": texts + texts[:50]})
    try:
        out = df.llm.annotate("text", labels=LABELS, model="sim-model", base_url=base_url,
                              cache=cache, max_concurrency=int(concurrency), progress=False)
    except KeyboardInterrupt:
        print(json.dumps(pla.last_report().to_dict()), flush=True)
        raise
    print(json.dumps({"done": True, "nan": int(out.isna().sum())}), flush=True)
    """
).replace("LABELS,", f"{LABELS!r},")


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimulatorHandle]:
    """A simulator in its own process, slow enough to kill a client mid-run."""
    with serve(subprocess=True, latency=0.2, jitter=0.1) as handle:
        yield handle


def start_child(tmp_path: Path, sim: SimulatorHandle) -> tuple[subprocess.Popen[str], Path]:
    """Once the server is idle, with its counters zeroed: the child labelling TEXTS into a
    fresh cache, and that cache."""
    idle(sim)
    sim.reset_stats()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(TEXTS))
    cache = tmp_path / "cache"
    child = start([str(script), sim.base_url, str(cache), str(texts_file), str(CONCURRENCY)])
    return child, cache


def cached_rows(cache: Path) -> int:
    with sqlite3.connect(cache / "answers.sqlite") as conn:
        return int(conn.execute(CACHED_ROWS).fetchone()[0])


def idle(sim: SimulatorHandle) -> dict[str, Any]:
    """Stats once the server has finished every request it had in flight."""
    wait_for(lambda: sim.stats()["in_flight"] == 0, 15, "the server to go idle")
    return sim.stats()


def rerun(sim: SimulatorHandle, cache: Path) -> pd.Series:
    df = pd.DataFrame({"text": TEXTS + TEXTS[:50]})
    return df.llm.annotate("text", labels=LABELS, model="sim-model", base_url=sim.base_url,
                           cache=cache, max_concurrency=32, progress=False)


def check_rerun(out: pd.Series, sim: SimulatorHandle, cached: int) -> dict[str, Any]:
    rep = pla.last_report()
    assert rep is not None
    stats = sim.stats()
    assert out.tolist() == [sim_answer(t, labels=LABELS) for t in TEXTS + TEXTS[:50]]
    assert rep.status == "finished"
    assert rep.cache_hits == cached
    # Nothing already in the cache was asked again, and nothing twice.
    assert rep.requests == DISTINCT - cached
    assert stats["requests"] == DISTINCT - cached
    assert len(stats["texts"]) == DISTINCT - cached
    assert set(stats["texts"].values()) == {1}
    return stats


def test_sigkill_then_resume_asks_only_for_what_is_missing(slow_sim: SimulatorHandle,
                                                           tmp_path: Path) -> None:
    child, cache = start_child(tmp_path, slow_sim)
    try:
        wait_for(lambda: slow_sim.stats()["ok"] >= 60, 60, "60 answers")
        assert child.poll() is None, child.communicate()
        child.kill()
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL

    first = idle(slow_sim)
    assert first["ok"] < DISTINCT  # really killed mid-run
    cached = cached_rows(cache)
    # Answers are committed as they arrive: all but those in flight at the kill.
    assert 60 - CONCURRENCY <= cached <= first["ok"]
    slow_sim.reset_stats()

    second = check_rerun(rerun(slow_sim, cache), slow_sim, cached)

    asked_twice = set(first["texts"]) & set(second["texts"])
    assert len(asked_twice) <= CONCURRENCY  # only what was in flight when killed
    assert set(first["texts"]) | set(second["texts"]) == set(TEXTS)
    assert cached_rows(cache) == DISTINCT


def test_ctrl_c_keeps_the_cache_and_a_partial_report(slow_sim: SimulatorHandle,
                                                     tmp_path: Path) -> None:
    child, cache = start_child(tmp_path, slow_sim)
    out, err, took = ctrl_c(child, lambda: slow_sim.stats()["ok"] >= 40)
    assert child.returncode == -signal.SIGINT, err
    assert "KeyboardInterrupt" in err
    assert took < 5.0, "in-flight requests were not cancelled promptly"

    report = json.loads(out.strip().splitlines()[-1])
    assert report["status"] == "interrupted"
    assert report["rows"] == DISTINCT + 50
    assert report["distinct"] == DISTINCT
    assert 40 - CONCURRENCY <= report["requests"] < DISTINCT
    first = idle(slow_sim)
    cached = cached_rows(cache)
    assert 40 - CONCURRENCY <= cached <= first["ok"]
    assert cached <= report["requests"]
    slow_sim.reset_stats()

    check_rerun(rerun(slow_sim, cache), slow_sim, cached)
