"""Every figure of a report is true for every status: finished, failed, interrupted,
fully cached, and a call that never started."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pandas as pd
import pytest

import pandas_llm_annotate as pla
from pandas_llm_annotate.simulator import serve

TEXTS = pd.Series([f"status message {i}" for i in range(40)] + ["status message 0"])


def test_a_failed_run_counts_every_row_without_an_answer() -> None:
    with pytest.raises(pla.ConnectError):
        TEXTS.llm.annotate(model="m", base_url="http://127.0.0.1:9/v1", cache=False,
                           progress=False)
    rep = pla.last_report()
    assert rep is not None and rep.status == "failed"
    assert rep.failed == 41 and rep.answered == 0
    assert len(rep.failures) == 41
    assert rep.failures["error"].str.startswith("not asked: the run failed").all()
    html = rep._repr_html_()
    assert "everything came from dedupe" not in html
    assert "0 of 41 rows answered" in html and "41 failed" in html
    assert "(0 of 41 answered)" in repr(rep)


def test_an_interrupted_run_says_how_many_rows_were_answered(tmp_path: Any) -> None:
    async def main(base_url: str) -> None:
        task = asyncio.ensure_future(TEXTS.llm.aannotate(
            model="m", base_url=base_url, cache=str(tmp_path), max_concurrency=4,
            progress=False))
        await asyncio.sleep(0.6)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with serve(latency=0.2) as sim:
        asyncio.run(main(sim.base_url))
    rep = pla.last_report()
    assert rep is not None and rep.status == "interrupted"
    assert 0 < rep.answered < 41
    assert rep.failed == 41 - rep.answered
    assert f"{rep.answered} of 41 rows answered" in rep._repr_html_()
    assert "not asked: the run was interrupted" in rep.failures["error"].iloc[-1]


def test_a_fully_cached_run_claims_no_format_and_no_packing(fresh_sim: Any,
                                                            opts: dict[str, Any]) -> None:
    TEXTS.llm.annotate(labels=["a", "b"], **opts)
    TEXTS.llm.annotate(labels=["a", "b"], **opts)
    rep = pla.last_report()
    assert rep is not None and rep.requests == 0 and rep.status == "finished"
    assert rep.answer_format == "" and rep.rows_per_request is None
    html = rep._repr_html_()
    assert "everything came from dedupe and the cache" in html
    for label in ("answer format", "rows per request"):
        value = re.search(f"{label}</span> <span[^>]*>([^<]*)</span>", html)
        assert value is not None and value.group(1) == "—", html
    assert rep.to_dict()["rows_per_request"] is None


def test_a_call_that_never_started_has_its_own_failed_report(fresh_sim: Any,
                                                             opts: dict[str, Any]) -> None:
    TEXTS.llm.annotate(**opts)
    with pytest.raises(pla.ConfigError):
        TEXTS.llm.annotate(labels=[], **opts)
    rep = pla.last_report()
    assert rep is not None and rep.status == "failed" and "labels is empty" in rep.message
    assert rep.requests == 0 and rep.failed == 41 and rep.answered == 0
