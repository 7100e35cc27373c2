"""`annotate(..., batch=True)`: the same answers through the simulator's Batch API, at
half price; failed, expired and cancelled requests asked again (in a batch, or online);
large jobs split; a run killed while its batch runs is resumed, not submitted again."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers.checks import wait_for
from helpers.expected import sim_answer
from helpers.local_server import LocalServer

import pandas_llm_annotate as pla
from pandas_llm_annotate.display.panel import tiles_html
from pandas_llm_annotate.display.snapshot import batches_text, snapshot
from pandas_llm_annotate.pipeline.pieces import Pieces
from pandas_llm_annotate.pipeline.sink import AnswerSink
from pandas_llm_annotate.protocol import batch_api
from pandas_llm_annotate.report.metrics import BatchProgress, Metrics
from pandas_llm_annotate.simulator import SimulatorHandle, serve
from pandas_llm_annotate.tasks.labels import LabelTask

LABELS = ["card_lost", "card_arrival", "refund", "other"]
DISTINCT = 300
TEXTS = [f"batch test {i}: " + ["I lost my card", "my card arrival", "refund please"][i % 3]
         for i in range(DISTINCT)]
ROWS = TEXTS + TEXTS[:50]
EXPECTED = [sim_answer(t, labels=LABELS) for t in ROWS]


def label(sim: SimulatorHandle, cache: Path, **options: Any) -> pd.Series:
    df = pd.DataFrame({"text": ROWS})
    settings = {"model": "gpt-4o-mini", "base_url": sim.base_url, "cache": str(cache),
                "progress": False, "batch": True, "batch_poll_s": 0.02, **options}
    return df.llm.annotate("text", labels=LABELS, **settings)


def report() -> pla.Report:
    rep = pla.last_report()
    assert rep is not None
    return rep


def test_a_batch_run_gives_the_online_answers_at_half_the_cost(tmp_path: Path) -> None:
    with serve(batch_delay=0.3) as sim:
        out = label(sim, tmp_path / "batch")
        rep, stats = report(), sim.stats()
        assert out.tolist() == EXPECTED
        assert (rep.status, rep.batch, rep.batches, rep.requests) == ("finished", True, 1, 300)
        assert (stats["batches"], stats["batch_requests"], stats["requests"]) == (1, 300, 0)
        assert (rep.prompt_tokens, rep.completion_tokens) == (
            stats["prompt_tokens"], stats["completion_tokens"])
        list_price = (rep.prompt_tokens * 0.15 + rep.completion_tokens * 0.60) / 1e6
        assert rep.cost_usd == pytest.approx(list_price / 2)
        assert pla.batches(cache=str(tmp_path / "batch")).empty  # collected

        online = label(sim, tmp_path / "online", batch=False)
        assert online.tolist() == EXPECTED
        assert report().cost_usd == pytest.approx(2 * rep.cost_usd)

        again = label(sim, tmp_path / "batch")  # all cached: nothing submitted
        assert again.tolist() == EXPECTED and report().requests == 0
        assert sim.stats()["batches"] == 1


def test_estimate_in_batch_mode_costs_half(tmp_path: Path) -> None:
    df = pd.DataFrame({"text": ROWS})
    options = {"model": "gpt-4o-mini", "base_url": "http://127.0.0.1:9/v1",
               "cache": str(tmp_path)}
    online = df.llm.estimate("text", labels=LABELS, **options)
    batch = df.llm.estimate("text", labels=LABELS, batch=True, **options)
    assert batch.requests == online.requests == DISTINCT
    assert online.cost_usd is not None
    assert batch.cost_usd == pytest.approx(online.cost_usd / 2, rel=1e-3)
    assert batch.cost_usd == online.batch_cost_usd
    assert batch.wall_s is None and "24 h" in batch.wall_basis


def test_batch_answers_calibrate_the_next_estimate_without_a_latency(tmp_path: Path) -> None:
    """A batch run stores its usage: the next estimate in that namespace is calibrated
    from it, and its wall time does not take the batch's answers for 0-second ones."""
    cache = tmp_path / "c"
    with serve(batch_delay=0.2) as sim:
        label(sim, cache)
        stats = sim.stats()
        df = pd.DataFrame({"text": [f"another {t}" for t in TEXTS]})
        est = df.llm.estimate("text", labels=LABELS, model="gpt-4o-mini",
                              base_url=sim.base_url, cache=str(cache))
    assert est.calibrated_from == DISTINCT
    actual = stats["prompt_tokens"] / DISTINCT  # per request, as the server counted
    assert est.prompt_tokens / DISTINCT == pytest.approx(actual, rel=0.05)
    assert "per answer" not in est.wall_basis  # no latency learned from a batch
    with sqlite3.connect(cache / "answers.sqlite") as conn:
        requests, timed = conn.execute("SELECT requests, timed FROM usage").fetchone()
    assert (requests, timed) == (DISTINCT, 0)


def test_a_usage_table_from_before_timed_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    with sqlite3.connect(path) as conn:  # the table as earlier versions wrote it
        conn.execute("CREATE TABLE usage (namespace TEXT PRIMARY KEY, requests INTEGER NOT NULL,"
                     " estimated_prompt REAL NOT NULL, prompt INTEGER NOT NULL,"
                     " completion INTEGER NOT NULL, latency REAL NOT NULL)")
        conn.execute("INSERT INTO usage VALUES ('ns', 10, 90.0, 100, 20, 3.0)")
    from pandas_llm_annotate.pipeline.cache import Cache

    cache = Cache.open(str(path))
    try:
        assert cache.usage("ns") == (10, 90.0, 100, 20, 3.0, 10)  # every old answer timed
    finally:
        cache.close()


def test_packed_rows_and_large_jobs_split_across_batches(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_api, "MAX_REQUESTS", 40)
    with serve(batch_delay=0.2) as sim:
        out = label(sim, tmp_path / "a")
        assert out.tolist() == EXPECTED
        assert sim.stats()["batches"] == report().batches == 8  # 300 requests, 40 a batch
        monkeypatch.setattr(batch_api, "MAX_FILE_BYTES", 20_000)
        out = label(sim, tmp_path / "b", rows_per_request=10)
        rep = report()
        assert out.tolist() == EXPECTED and rep.requests == 30
        assert rep.batches > 1  # the 20 KB file bound split 30 packed requests
        assert set(sim.stats()["texts"].values()) == {2}  # each text once per run


def test_failed_requests_are_asked_again_in_new_batches(tmp_path: Path) -> None:
    with serve(batch_delay=0.2, batch_faults=0.2, seed=1) as sim:
        out = label(sim, tmp_path / "c")
        rep, stats = report(), sim.stats()
        assert out.tolist() == EXPECTED and rep.failed == 0
        assert stats["batch_failed"] > 20 and stats["batches"] >= 2
        assert rep.requests == stats["batch_requests"] + stats["batch_failed"]
        assert set(stats["texts"].values()) == {1}  # answered ones never asked again


def test_without_rounds_left_rows_get_nan_and_the_reason(tmp_path: Path) -> None:
    with serve(batch_delay=0.2, batch_faults=0.2, seed=1) as sim:
        out = label(sim, tmp_path / "d", max_retries=0)
        rep, stats = report(), sim.stats()
        assert stats["batches"] == 1
        failed = rep.failures
        assert out.isna().sum() > 0 and len(failed) == out.isna().sum()
        assert failed["error"].str.contains("no answer after 1 batches: HTTP 500").all()
        assert rep.status == "finished"


def test_expired_requests_are_asked_again_or_given_up_with_the_reason(tmp_path: Path) -> None:
    with serve(batch_delay=2.0, batch_window=0.5) as sim:
        out = label(sim, tmp_path / "e", max_retries=1)
        rep, stats = report(), sim.stats()
        assert stats["batches"] == 2  # the expired rows went into a second batch, once
        assert 0 < stats["batch_requests"] < DISTINCT
        assert out.notna().sum() > 0 and out.isna().sum() > 0
        assert rep.failures["error"].str.contains("batch_expired").all()
        assert out.dropna().tolist() == [e for e, o in zip(EXPECTED, out, strict=True)
                                         if isinstance(o, str)]


def test_fallback_online_asks_what_a_batch_did_not_answer_online(tmp_path: Path) -> None:
    with serve(batch_delay=2.0, batch_window=0.5) as sim:
        out = label(sim, tmp_path / "f", batch_fallback="online")
        rep, stats = report(), sim.stats()
        assert out.tolist() == EXPECTED
        assert stats["batches"] == 1 and stats["ok"] == DISTINCT - stats["batch_requests"] > 0
        assert set(stats["texts"].values()) == {1}
        list_price = (rep.prompt_tokens * 0.15 + rep.completion_tokens * 0.6) / 1e6
        assert rep.cost_usd is not None
        assert list_price / 2 < rep.cost_usd < list_price  # only the batch part discounted


def test_a_server_without_the_batch_api(tmp_path: Path) -> None:
    with LocalServer(lambda body: "refund") as server:
        options = {"model": "m", "base_url": server.base_url, "cache": str(tmp_path),
                   "progress": False, "batch": True}
        df = pd.DataFrame({"text": ["a", "b", "a"]})
        with pytest.raises(pla.NotFoundError, match="Batch API"):
            df.llm.annotate("text", labels=["refund", "other"], **options)
        out = df.llm.annotate("text", labels=["refund", "other"], batch_fallback="online",
                              **options)
        assert out.tolist() == ["refund"] * 3
        assert "rows asked online" in report().message


def test_the_sink_settles_a_key_once() -> None:
    """A batch of an earlier run may answer a key again: the first valid answer wins and
    its rows are counted once."""
    task = LabelTask.build(None, ["refund", "other"], None)
    pieces = Pieces(["a", "b"], "ns", 1000, np.array([2, 1]))
    m = Metrics(rows=3)
    sink = AnswerSink(task, pieces, m, namespace="ns", packed=False)
    (a,), (b,) = pieces.keys
    sink.accept((a,), "refund")
    sink.accept((a,), "other")
    sink.fail((a,), "late")
    assert sink.answers[a] == "refund" and a not in sink.failed and m.rows_done == 2
    sink.accept((b,), "nonsense")  # not a label: failed, settled
    sink.accept((b,), "other")  # a valid answer later replaces the failure
    assert sink.answers[b] == "other" and b not in sink.failed and m.rows_done == 3


def test_the_panel_and_the_text_bar_show_each_batch() -> None:
    m = Metrics(rows=10, batch=True)
    m.batches["batch_a"] = BatchProgress("batch_a", "completed", 6, 5, 1)
    m.batches["batch_b"] = BatchProgress("batch_b", "in_progress", 4, 1, 0)
    s = snapshot(m)
    assert "batch_b in progress 1/4 done" in batches_text(s)
    assert "batch_a completed 5/6 done, 1 failed" in tiles_html(s)
    assert batches_text(snapshot(Metrics(rows=10))) == ""


@pytest.mark.slow
def test_cancel_batches_then_the_run_asks_the_rest_again(tmp_path: Path) -> None:
    cache = tmp_path / "g"
    with serve(batch_delay=3.0) as sim:
        box: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: box.update(out=label(sim, cache)))
        worker.start()
        wait_for(lambda: sim.stats()["batch_requests"] > 30, 20, "the batch to run")
        (open_,) = pla.batches(cache=str(cache))["batch_id"]
        with pytest.raises(pla.ConfigError, match="No open batch"):
            pla.cancel_batches("batch_unknown", cache=str(cache), base_url=sim.base_url)
        left = pla.cancel_batches(cache=str(cache), base_url=sim.base_url)
        assert set(left["status"]) <= {"cancelling", "cancelled"}
        worker.join(30)
        rep, stats = report(), sim.stats()
        assert box["out"].tolist() == EXPECTED
        assert stats["batches"] == 2 and set(stats["texts"].values()) == {1}
        assert rep.status == "finished" and rep.batches == 2 and open_.startswith("batch_")
        assert pla.batches(cache=str(cache)).empty


CHILD = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    import pandas_llm_annotate as pla

    base_url, cache, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    df = pd.DataFrame({"text": rows})
    df.llm.annotate("text", labels=LABELS, model="gpt-4o-mini", base_url=base_url,
                    cache=cache, progress=False, batch=True, batch_poll_s=0.05)
    print("finished", flush=True)
    """
).replace("LABELS,", f"{LABELS!r},")


def open_rows(cache: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(cache / "answers.sqlite") as conn:
        return conn.execute("SELECT batch_id, status, requests FROM batches"
                            " WHERE collected = 0").fetchall()


def copy_input_file(sim: SimulatorHandle, batch_id: str) -> str:
    """Upload the input file of `batch_id` again: a file no batch was created for."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{sim.base_url}/batches/{batch_id}", timeout=10) as resp:
        file_id = json.load(resp)["input_file_id"]
    with opener.open(f"{sim.base_url}/files/{file_id}/content", timeout=10) as resp:
        data = resp.read()
    boundary = "pla-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"copy.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{sim.base_url}/files", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with opener.open(request, timeout=10) as resp:
        return str(json.load(resp)["id"])


@pytest.mark.slow
@pytest.mark.parametrize("lost", ["nothing", "the batch id", "the batch", "nothing; a subset",
                                  "nothing; a subset under max_cost"])
def test_a_run_killed_while_its_batch_runs_is_resumed(tmp_path: Path, lost: str) -> None:
    """SIGKILL while the batch is in progress; the rerun submits nothing again, also when
    the kill came before the batch id was saved (the batch is found by its input file).
    When it came before the batch was created, the rerun creates it, once. A rerun over
    some of the texts collects the batch too: the answers of the others are cached (also
    under a budget, which then cannot bound the others' requests and counts their usage)."""
    cache = tmp_path / "h"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with serve(subprocess=True, batch_delay=3.0) as sim:
        child = subprocess.Popen([sys.executable, str(script), sim.base_url, str(cache),
                                  json.dumps(ROWS)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: sim.stats()["batch_requests"] > 0, 30, "the batch to run")
            assert child.poll() is None, child.communicate()
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            out, err = child.communicate()
        assert child.returncode == -signal.SIGKILL and "finished" not in out, err
        ((batch_id, status, requests),) = open_rows(cache)
        assert status in ("validating", "in_progress") and requests == DISTINCT
        with sqlite3.connect(cache / "answers.sqlite") as conn:
            if lost == "the batch id":  # killed between creating the batch and saving its id
                conn.execute("UPDATE batches SET batch_id = NULL")
            elif lost == "the batch":  # killed between saving the file id and creating
                conn.execute("UPDATE batches SET batch_id = NULL, input_file_id = ?",
                             (copy_input_file(sim, batch_id),))
        assert sim.stats()["batch_requests"] < DISTINCT  # really killed mid-batch

        if lost.startswith("nothing; a subset"):
            budget = {"max_cost": 10.0} if "max_cost" in lost else {}
            some = pd.DataFrame({"text": TEXTS[:100]}).llm.annotate(
                "text", labels=LABELS, model="gpt-4o-mini", base_url=sim.base_url,
                cache=str(cache), progress=False, batch=True, batch_poll_s=0.02, **budget)
            assert some.tolist() == EXPECTED[:100] and report().batches_resumed == 1
            assert report().status == "finished"
        out_again = label(sim, cache)
        rep, stats = report(), sim.stats()
        assert out_again.tolist() == EXPECTED
        assert open_rows(cache) == []
        assert stats["requests"] == 0
        if lost == "the batch":
            assert (stats["batches"], rep.batches, rep.requests) == (2, 1, DISTINCT)
            return
        assert (stats["batches"], stats["files"]) == (1, 1)  # 0 batches submitted twice
        assert set(stats["texts"].values()) == {1}  # 0 requests asked twice
        assert stats["batch_requests"] == DISTINCT
        if lost.startswith("nothing; a subset"):  # the first rerun collected and cached all
            assert (rep.cache_hits, rep.batches_resumed, rep.requests) == (DISTINCT, 0, 0)
            return
        assert (rep.batches, rep.batches_resumed, rep.requests) == (0, 1, 0)
