"""`ddf.llm.annotate(...)` on a real `distributed.LocalCluster` (two worker processes)
against the simulator on 127.0.0.1: lazy with the right meta, the pandas answers, each
distinct text asked once across partitions, one rate budget for the cluster, the SQLite
cache shared by the worker processes, and a worker killed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import pandas_llm_annotate as pla  # noqa: E402
from pandas_llm_annotate.dask.coordinator import coordinators  # noqa: E402
from pandas_llm_annotate.simulator import serve  # noqa: E402

pytestmark = pytest.mark.dask
LABELS = ["card", "refund", "other"]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=2,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as dask_client:
        yield dask_client


def frame(distinct: int, repeats: int, *, missing: bool = False) -> pd.DataFrame:
    """`distinct` texts, each `repeats` times, spread over the whole frame (so every
    partition holds most texts), on a non-range index."""
    texts: list[Any] = [f"text number {i % distinct}" for i in range(distinct * repeats)]
    if missing:
        texts[::17] = [None, "", "  ", float("nan")] * (len(texts[::17]) // 4) + [None] * (
            len(texts[::17]) % 4)
        texts[5] = 12345  # converted with str(), as in pandas
    index = pd.Index([f"row-{i}" for i in range(len(texts))][::-1], name="id")
    return pd.DataFrame({"text": texts, "n": range(len(texts))}, index=index)


def test_lazy_with_meta_the_pandas_answers_each_text_asked_once(
        client: Any, tmp_path: Path) -> None:
    pdf = frame(150, 4, missing=True)
    ddf = dd.from_pandas(pdf, npartitions=6, sort=False)  # the frame's own row order
    with serve(latency=0.01, seed=3) as sim:
        opts = {"model": "sim", "base_url": sim.base_url, "progress": False}
        lazy = ddf.llm.annotate("text", labels=LABELS, cache=str(tmp_path / "a"), **opts)
        assert sim.stats()["requests"] == 0  # nothing asked before compute
        assert lazy.npartitions == 6 and lazy.name == "text" and lazy.dtype == object
        out = lazy.compute()
        asked = sim.stats()["texts"]
        expected = pdf.llm.annotate("text", labels=LABELS, cache=str(tmp_path / "b"), **opts)
    assert out.equals(expected) and out.index.equals(pdf.index)
    distinct = expected.attrs["llm_report"].distinct
    assert len(asked) == distinct and max(asked.values()) == 1  # once across partitions
    report = out.attrs["llm_report"]
    assert (report.rows, report.missing, report.distinct) == (len(pdf), pdf["text"].map(
        lambda t: not isinstance(t, (str, int)) or not str(t).strip()).sum(), distinct)
    assert report.requests == distinct and report.failed == 0
    assert report.answered == report.rows - report.missing and report.status == "finished"
    assert isinstance(report.to_dict()["p50_s"], float)


def test_extract_and_multi_label_give_the_pandas_frames(client: Any, tmp_path: Path) -> None:
    """Typed fields (some answered wrong by the simulator: NA, listed with their field)
    and lists of labels: what the pandas path gives, with its dtypes, as the meta says."""
    pdf = frame(80, 3, missing=True)
    ddf = dd.from_pandas(pdf, npartitions=5, sort=False)
    fields = {"product": str, "amount": float | None, "count": int,
              "currency": ["USD", "EUR", "GBP"], "urgent": bool}
    with serve(latency=0.01, bad_fields=0.2, seed=9) as sim:
        opts = {"model": "sim", "base_url": sim.base_url, "progress": False}
        lazy = ddf.llm.extract("text", fields, cache=str(tmp_path / "a"), **opts)
        assert list(lazy.columns) == list(fields) and sim.stats()["requests"] == 0
        got = lazy.compute()
        want = pdf.llm.extract("text", fields, cache=str(tmp_path / "b"), **opts)
        tags = ddf["text"].llm.annotate(labels=LABELS, multi_label=True,
                                        cache=str(tmp_path / "a"), **opts).compute()
        tags_pd = pdf["text"].llm.annotate(labels=LABELS, multi_label=True,
                                           cache=str(tmp_path / "b"), **opts)
    pd.testing.assert_frame_equal(got, want, check_index_type=False)  # dask: str index
    assert dict(got.dtypes) == dict(lazy.dtypes)  # the meta was right
    rep, rep_pd = got.attrs["llm_report"], want.attrs["llm_report"]
    assert rep.fields_failed == rep_pd.fields_failed > 0
    assert (rep.failed, rep.requests) == (rep_pd.failed, rep_pd.requests)
    assert "field" in rep.failures.columns
    assert tags.equals(tags_pd) and tags.dropna().map(type).eq(list).all()


def test_the_worker_processes_share_the_cache(client: Any, tmp_path: Path) -> None:
    ddf = dd.from_pandas(frame(200, 2), npartitions=8)
    with serve(seed=4) as sim:
        opts = {"model": "sim", "base_url": sim.base_url, "progress": False,
                "cache": str(tmp_path)}
        first = ddf.llm.annotate("text", labels=LABELS, **opts).compute()
        writers = client.run(os.getpid)
        again = ddf["text"].llm.annotate(labels=LABELS, **opts).compute()  # the Series one
        requests = sim.stats()["requests"]
    assert len(set(writers.values())) == 2
    assert again.equals(first) and requests == 200  # the second computation: all cached
    assert again.attrs["llm_report"].cache_hits == 200
    assert again.attrs["llm_report"].requests == 0


def test_one_rate_budget_for_the_whole_cluster(client: Any, tmp_path: Path) -> None:
    # 2,400 requests/min (40/s, a 1 s burst) for the key, said in the headers. Two
    # processes with two threads each, each run up to 64 in flight: alone, each would
    # send at the full rate. 240 distinct texts: at least (240 - 40) / 40 = 5 s.
    ddf = dd.from_pandas(frame(240, 3), npartitions=8)
    with serve(latency=0.05, rpm=2400, seed=5) as sim:
        start = time.perf_counter()
        out = ddf.llm.annotate("text", labels=LABELS, model="sim", base_url=sim.base_url,
                               cache=str(tmp_path), progress=False).compute()
        wall = time.perf_counter() - start
        stats = sim.stats()
    assert out.notna().all()
    assert stats["ok"] == 240 and len(stats["texts"]) == 240
    assert stats["rate_limited"] <= 5, stats["rate_limited"]  # < 2 %
    assert wall >= 0.9 * (240 - 40) / 40
    assert out.attrs["llm_report"].rate_limited == stats["rate_limited"]


def test_the_calls_rpm_holds_for_the_whole_cluster(client: Any, tmp_path: Path) -> None:
    # rpm=1200 (20/s, a 1 s burst) and a server without limits: 100 distinct texts take
    # at least (100 - 20) / 20 = 4 s, however many partitions run at once.
    ddf = dd.from_pandas(frame(100, 2), npartitions=8)
    with serve(latency=0.01, seed=8) as sim:
        start = time.perf_counter()
        out = ddf.llm.annotate("text", labels=LABELS, model="sim", base_url=sim.base_url,
                               cache=str(tmp_path), progress=False, rpm=1200).compute()
        wall = time.perf_counter() - start
    assert out.notna().all() and wall > 3.6
    with pytest.raises(pla.ConfigError, match="max_cost= is not supported on Dask"):
        ddf.llm.annotate("text", model="sim", base_url=sim.base_url, max_cost=1.0,
                         price=(1, 1))


def test_a_killed_worker_costs_only_the_texts_without_an_answer(
        client: Any, tmp_path: Path) -> None:
    ddf = dd.from_pandas(frame(300, 2), npartitions=6)
    with serve(latency=0.1, seed=6) as sim:
        opts = {"model": "sim", "base_url": sim.base_url, "progress": False,
                "cache": str(tmp_path), "max_concurrency": 8}
        host, _ = coordinators([sim.base_url], None, "sim", max_concurrency=8,
                               timeout=60)[sim.base_url]
        pids = client.run(os.getpid)
        killed: list[int] = []

        def kill_when_busy() -> None:
            """SIGKILL a worker (not the one holding the rate coordinator) that has run
            a partition of distinct texts for half a second (5 latencies)."""
            since: dict[str, float] = {}
            while not killed:
                now = time.monotonic()
                busy = [w for w, keys in client.processing().items()
                        if w != host and any("_annotate_part" in str(k) for k in keys)]
                since = {w: since.get(w, now) for w in busy}
                ready = [w for w, t in since.items() if now - t > 0.5]  # answers came back
                if ready:
                    killed.append(pids[ready[0]])
                    os.kill(killed[0], signal.SIGKILL)
                time.sleep(0.01)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        out = ddf.llm.annotate("text", labels=LABELS, **opts).compute()
        killer.join()
        stats = sim.stats()
    assert out.notna().all() and len(out) == 600
    assert len(stats["texts"]) == 300
    # asked again: only what was in flight on the killed worker (2 runs x 8 at most) and
    # answers of its last moment not yet written (group commits of 10 ms)
    assert stats["requests"] - 300 <= 24, stats["requests"]
    # the killed worker's partitions ran again elsewhere, their answers from the cache
    assert out.attrs["llm_report"].cache_hits > 0
    assert killed[0] not in client.run(os.getpid).values()  # it was really killed


def test_the_coordinators_worker_killed_the_run_goes_on_under_local_limits(
        client: Any, tmp_path: Path) -> None:
    ddf = dd.from_pandas(frame(300, 2), npartitions=6)
    with serve(latency=0.1, seed=7) as sim:
        host, _ = coordinators([sim.base_url], None, "sim", max_concurrency=8,
                               timeout=60)[sim.base_url]
        pid = client.run(os.getpid)[host]

        def kill_when_busy() -> None:
            while sim.stats()["ok"] < 60:
                time.sleep(0.01)
            os.kill(pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        out = ddf.llm.annotate("text", labels=LABELS, model="sim", base_url=sim.base_url,
                               cache=str(tmp_path), progress=False, max_concurrency=8).compute()
        killer.join()
        again = coordinators([sim.base_url], None, "sim", max_concurrency=8,
                             timeout=60)[sim.base_url]
    assert out.notna().all() and len(sim.stats()["texts"]) == 300
    assert "rate coordinator could not be reached" in out.attrs["llm_report"].message
    assert again[0] != host  # the next computation gets a new coordinator


def test_the_accessors_come_with_dask_in_either_import_order() -> None:
    code = ("import sys; import pandas_llm_annotate; assert 'dask' not in sys.modules; "
            "import dask.dataframe as dd, pandas as pd; "
            "assert hasattr(dd.from_pandas(pd.Series(['a']), npartitions=1), 'llm')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert hasattr(dd.from_pandas(pd.DataFrame({"a": ["x"]}), npartitions=1), "llm")
    with pytest.raises(pla.ColumnNotFoundError, match="No column 'b'"):
        dd.from_pandas(pd.DataFrame({"a": ["x"]}), npartitions=1).llm.annotate("b")
