"""Each run keeps to itself: per-call limits end with the call, and each run's report
is its own, also when two runs go at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pandas as pd
import pytest

import pandas_llm_annotate as pla
from pandas_llm_annotate.simulator import serve


@pytest.fixture
def quick_sim() -> Any:
    """A simulator of its own (limits learned from it must not leak into other tests)."""
    with serve(latency=0.05, jitter=0.1, seed=11) as sim:
        yield sim


def options(sim: Any, tmp_path: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "base_url": sim.base_url, "cache": str(tmp_path), "progress": False,
            **extra}


def texts(prefix: str, n: int) -> pd.Series:
    return pd.Series([f"{prefix} message number {i}" for i in range(n)])


@pytest.mark.slow
def test_a_calls_rpm_does_not_stick_to_later_calls(quick_sim: Any, tmp_path: Any) -> None:
    start = time.perf_counter()
    texts("slow", 5).llm.annotate(rpm=60, **options(quick_sim, tmp_path))
    assert time.perf_counter() - start > 3.5  # 1 request/s, as asked
    start = time.perf_counter()
    out = texts("fast", 100).llm.annotate(**options(quick_sim, tmp_path))
    elapsed = time.perf_counter() - start
    assert out.notna().all()
    assert elapsed < 2.0, f"100 rows took {elapsed:.1f} s after an rpm=60 call"


@pytest.mark.slow
def test_a_calls_tpm_does_not_stick_to_later_calls(quick_sim: Any, tmp_path: Any) -> None:
    texts("slow", 3).llm.annotate(tpm=600, max_tokens=16, **options(quick_sim, tmp_path))
    start = time.perf_counter()
    texts("fast", 100).llm.annotate(**options(quick_sim, tmp_path))
    assert time.perf_counter() - start < 2.0


def test_a_runs_max_concurrency_does_not_shrink_a_concurrent_run(quick_sim: Any,
                                                                  tmp_path: Any) -> None:
    async def both() -> tuple[pd.Series, pd.Series]:
        wide = texts("wide", 300).llm.aannotate(**options(quick_sim, tmp_path / "a"))
        narrow = texts("narrow", 20).llm.aannotate(
            max_concurrency=2, **options(quick_sim, tmp_path / "b"))
        return await asyncio.gather(wide, narrow)

    wide, narrow = asyncio.run(both())
    wide_report, narrow_report = wide.attrs["llm_report"], narrow.attrs["llm_report"]
    assert narrow_report.max_in_flight <= 2
    assert wide_report.max_in_flight >= 16


def test_two_concurrent_runs_each_get_their_own_report(fresh_sim: Any, tmp_path: Any) -> None:
    opts = options(fresh_sim, tmp_path)

    async def both() -> tuple[pd.Series, pd.Series]:
        first = texts("first", 40).llm.aannotate("Summarise.", **opts)
        second = texts("second", 7).llm.aannotate(labels=["a", "b"], **opts)
        return await asyncio.gather(first, second)

    first, second = asyncio.run(both())
    one, two = first.attrs["llm_report"], second.attrs["llm_report"]
    assert (one.rows, one.requests) == (40, 40)
    assert (two.rows, two.requests) == (7, 7)
    assert pla.last_report() in (one, two)  # the run that ended last


def test_last_report_is_the_last_run_to_end_and_holds_no_run(fresh_sim: Any,
                                                             tmp_path: Any) -> None:
    out = texts("a", 3).llm.annotate(**options(fresh_sim, tmp_path))
    report = pla.last_report()
    assert report is out.attrs["llm_report"]
    assert isinstance(report, pla.Report) and report.rows == 3
    assert not any(isinstance(v, pd.Series) for v in vars(report).values())


@pytest.mark.parametrize(("labels", "message"), [
    ("x", "not one string"),
    (["a", "a"], "duplicate labels"),
    ([], "labels is empty"),
    (5, "must be a list of strings"),
])
def test_label_mistakes_are_config_errors(labels: Any, message: str) -> None:
    with pytest.raises(pla.ConfigError, match=message):
        pd.Series(["t"]).llm.annotate(labels=labels, model="m", base_url="http://127.0.0.1:9/v1")


def test_a_mistyped_option_is_an_annotate_error() -> None:
    with pytest.raises(pla.AnnotateError, match="Did you mean 'max_concurrency'"):
        pd.Series(["t"]).llm.annotate(max_concurency=3, model="m")


def test_one_label_warns_that_every_row_gets_it(fresh_sim: Any, opts: dict[str, Any]) -> None:
    with pytest.warns(UserWarning, match="every row that gets an answer gets that label"):
        pd.Series(["a", "b"]).llm.annotate(labels=["only"], **opts)


def test_the_probe_against_a_shallow_bucket(tmp_path: Any) -> None:
    """A 20-request bucket (rpm=1200, 1 s deep) under the 32-request probe: at most the
    excess of the first round is refused, and no row is lost."""
    with serve(latency=0.3, rpm=1200) as sim:
        out = texts("probe", 200).llm.annotate(**options(sim, tmp_path))
    rep = out.attrs["llm_report"]
    assert out.notna().all() and rep.requests == 200
    assert 0 < rep.rate_limited <= 32 - 20
