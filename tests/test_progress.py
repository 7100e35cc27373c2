"""Progress: which view where, what a snapshot says, how often it draws, the final state."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pandas_llm_annotate as pla
from pandas_llm_annotate.display import progress
from pandas_llm_annotate.display.fmt import fmt_s
from pandas_llm_annotate.display.progress import choose
from pandas_llm_annotate.display.snapshot import Meter, Snapshot, snapshot
from pandas_llm_annotate.display.text_bar import TextView
from pandas_llm_annotate.display.text_layout import final_block, live_lines
from pandas_llm_annotate.report.metrics import Metrics
from pandas_llm_annotate.simulator import serve

LABELS = ["card_lost", "refund", "other"]


class Recorder:
    """A view that records what it is asked to draw, when and on which thread."""

    def __init__(self) -> None:
        self.draws: list[tuple[float, Snapshot, int]] = []
        self.closed: Snapshot | None = None

    def draw(self, s: Snapshot) -> None:
        self.draws.append((time.perf_counter(), s, threading.get_ident()))

    def close(self, s: Snapshot) -> None:
        self.closed = s


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    view = Recorder()
    monkeypatch.setattr(progress, "make_view", lambda mode, m: view if mode != "none" else None)
    return view


# --- which view ------------------------------------------------------------------------------


@pytest.mark.parametrize(("notebook", "widgets", "tty", "setting", "mode"), [
    (True, True, False, "auto", "widget"),
    (True, True, False, True, "widget"),
    (True, False, False, "auto", "text"),  # a kernel without ipywidgets: text in the output
    (True, True, False, False, "none"),
    (False, True, True, "auto", "text"),  # a script in a terminal
    (False, True, False, "auto", "none"),  # a pipe, CI
    (False, True, False, True, "text"),  # forced
    (False, True, True, False, "none"),
])
def test_choose(monkeypatch: pytest.MonkeyPatch, notebook: bool, widgets: bool, tty: bool,
                setting: object, mode: str) -> None:
    monkeypatch.setattr(progress, "in_notebook", lambda: notebook)
    monkeypatch.setattr(progress, "has_widgets", lambda: widgets)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
    assert choose(setting) == mode
    assert progress.wanted(setting) == (mode != "none")


def test_not_a_notebook_outside_a_kernel() -> None:
    assert progress.in_notebook() is False  # pytest is no Jupyter kernel, IPython or not


# --- snapshots -------------------------------------------------------------------------------


def metrics(**kw: Any) -> Metrics:
    m = Metrics(rows=1000, missing=10, distinct=600, pieces=600, cache_hits=50, semantic_hits=7,
                rows_done=400, requests=300, retries=12, rate_limited=5, errors=9, in_flight=16,
                window=32, prompt_tokens=2_000_000, completion_tokens=100_000)
    m.latencies.extend([0.1, 0.2, 0.3, 0.4, 1.0])
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def test_snapshot_numbers() -> None:
    s = snapshot(metrics())
    assert (s.status, s.done, s.rows, s.in_flight, s.window) == ("running", 400, 1000, 16, 32)
    assert s.saved_dedupe == 1000 - 10 - 600  # rows − missing − distinct
    assert (s.saved_cache, s.saved_semantic) == (50, 7)
    assert (s.requests, s.retries, s.rate_limited) == (300, 12, 5)
    assert s.errors == 4  # errors other than 429s
    assert s.p50 == pytest.approx(0.3)
    assert s.ttft_p50 is None
    assert s.cost is None and s.model == ""  # no price known for no model
    assert snapshot(metrics(model="gpt-4o-mini")).cost == pytest.approx(2 * 0.15 + 0.1 * 0.60)
    assert snapshot(metrics(model="my-model", price=(1.0, 2.0))).cost == pytest.approx(2.2)
    bar, details = live_lines(s, 100)
    assert "400/1,000 rows" in bar and "in flight 16/32" in details


def test_meter_rate_and_eta_ignore_what_was_done_before_the_first_request() -> None:
    m = metrics(requests=0, rows_done=300)  # missing + cache hits, done at once
    meter = Meter(window_s=10)
    meter.add(0.0, m)
    assert not meter.samples
    m.requests = 1
    for t in range(1, 31):  # 20 rows/s from t=1
        m.rows_done = 300 + 20 * (t - 1)
        meter.add(float(t), m)
    assert meter.rate() == pytest.approx(20)
    assert meter.samples[-1][0] - meter.samples[0][0] <= 10
    s = snapshot(m, meter)
    assert s.eta == pytest.approx((1000 - m.rows_done) / 20)


def test_final_status_comes_from_metrics_or_from_the_exception() -> None:
    m = metrics()
    assert snapshot(m, outcome=None).status == "finished"
    interrupted = snapshot(m, outcome=KeyboardInterrupt())
    assert interrupted.status == "interrupted"
    assert "400 of 1,000 rows" in interrupted.message and "cache" in interrupted.message
    assert snapshot(m, outcome=asyncio.CancelledError()).status == "interrupted"
    failed = snapshot(m, outcome=RuntimeError("server said no"))
    assert (failed.status, failed.message) == ("failed", "server said no")
    m.finish("interrupted", "interrupted, 380 new answers saved in cache")  # the core's word wins
    s = snapshot(m, outcome=KeyboardInterrupt())
    assert s.message == "interrupted, 380 new answers saved in cache"
    assert s.eta is None and s.rate == pytest.approx(m.rows_done / m.elapsed)
    assert final_block(s, 80)[0].startswith("annotate interrupted in ")


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (0.2134, "0.213 s"), (2.5, "2.50 s"), (12.34, "12.3 s"), (125, "2 min 05 s"),
    (3725, "1 h 02 min"), (float("inf"), "—"),
])
def test_fmt_s(seconds: float | None, text: str) -> None:
    assert fmt_s(seconds) == text


# --- the draw loop ---------------------------------------------------------------------------


def test_draws_twice_a_second_on_the_loop_thread_and_ends_finished(
        recorder: Recorder, tmp_path: Path) -> None:
    with serve(latency=0.25, rpm=3000, seed=1) as sim:
        texts = pd.Series([f"message number {i}" for i in range(120)])
        started = time.perf_counter()
        texts.llm.annotate(labels=LABELS, model="m", base_url=sim.base_url, cache=tmp_path,
                           max_concurrency=8, progress=True)
        elapsed = time.perf_counter() - started
    times = [t for t, _, _ in recorder.draws]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert elapsed > 2
    assert min(gaps) >= progress.INTERVAL_S * 0.9  # never more often than every 0.5 s
    assert len(times) >= elapsed / progress.INTERVAL_S - 2  # and it keeps drawing
    assert len({ident for _, _, ident in recorder.draws}) == 1  # one thread: the loop's
    done = [s.done for _, s, _ in recorder.draws]
    assert done == sorted(done) and 0 < done[len(done) // 2] < 120
    assert any(s.in_flight > 0 for _, s, _ in recorder.draws)
    assert recorder.closed is not None
    assert (recorder.closed.status, recorder.closed.done) == ("finished", 120)


def test_a_broken_view_never_breaks_the_run(monkeypatch: pytest.MonkeyPatch,
                                            opts: dict[str, Any]) -> None:
    class Broken:
        def draw(self, s: Snapshot) -> None:
            raise RuntimeError("front-end gone")

        def close(self, s: Snapshot) -> None:
            raise RuntimeError("front-end gone")

    monkeypatch.setattr(progress, "make_view", lambda mode, m: Broken())
    out = pd.Series(["I lost my card", "refund please"]).llm.annotate(
        labels=LABELS, **{**opts, "progress": True})
    assert out.notna().all()


@pytest.mark.parametrize("finish_inside", [True, False])
def test_interrupted_run_leaves_the_reason(recorder: Recorder, finish_inside: bool) -> None:
    """The core sets the status before leaving `show` (finish_inside) or after it."""
    m = Metrics(rows=10, rows_done=4, requests=3)

    async def run() -> None:
        async with progress.show(m, True):
            try:
                await asyncio.sleep(0.01)
                raise KeyboardInterrupt
            finally:
                if finish_inside:
                    m.finish("interrupted", "interrupted, 4 rows saved in cache")

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(run())
    assert recorder.closed is not None
    assert recorder.closed.status == "interrupted"
    expected = "interrupted, 4 rows saved in cache" if finish_inside else "4 of 10 rows"
    assert expected in recorder.closed.message


# --- text -------------------------------------------------------------------------------------


def test_text_bar_final_line(opts: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    texts = pd.Series(["I lost my card", "refund please", "I lost my card", None])
    texts.llm.annotate(labels=LABELS, **{**opts, "progress": True})
    err = capsys.readouterr().err
    assert err.count("annotate finished in") == 1
    assert "4 rows" in err and "saved 1 call by dedupe" in err


SCRIPT = """
import pandas as pd, pandas_llm_annotate as pla
from pandas_llm_annotate.simulator import serve
with serve(latency=0.05) as sim:
    pd.Series([f"text {i}" for i in range(30)]).llm.annotate(
        model="m", base_url=sim.base_url, cache=False)
print("DONE")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_script_in_a_terminal_shows_a_text_bar_on_stderr() -> None:
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stderr=follower,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "160"})
    os.close(follower)
    chunks: list[bytes] = []

    def drain() -> None:  # read as it comes: a full pty buffer would block the child
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child is gone and the terminal closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = proc.communicate(timeout=60)
    reader.join(10)
    os.close(leader)
    err = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0 and stdout.strip() == "DONE"
    assert "30 rows" in err and err.count("annotate finished in") == 1


def test_auto_is_silent_in_a_pipe() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "DONE"
    assert proc.stderr == ""


def test_report_is_unchanged_by_progress(opts: dict[str, Any]) -> None:
    pd.Series(["a b c"]).llm.annotate(**opts)
    rep = pla.last_report()
    assert rep is not None and rep.status == "finished"


def test_a_panel_that_cannot_show_falls_back_to_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas_llm_annotate.display.panel", None)  # import fails
    view = progress.make_view("widget", Metrics(rows=3))
    assert isinstance(view, TextView)
    view.close(snapshot(Metrics(rows=3), outcome=None))
