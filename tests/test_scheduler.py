"""Scheduler bookkeeping: the shared limiter's in-flight count always returns to zero."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
import pytest

import pandas_llm_annotate as pla
from pandas_llm_annotate.ratelimit import registry as lim_mod
from pandas_llm_annotate.ratelimit.limiter import Limiter
from pandas_llm_annotate.simulator import serve


def limiter_for(base_url: str) -> Limiter:
    found = [v for (url, _, _), v in lim_mod._shared.items() if url == base_url]
    assert len(found) == 1
    return found[0]


def test_in_flight_balanced_after_faults(tmp_path: Any) -> None:
    df = pd.DataFrame({"text": [f"message {i}" for i in range(150)]})
    with serve(latency=0.01, faults=0.2, hang=2.0, seed=3) as sim:
        out = df.llm.annotate("text", model="m", base_url=sim.base_url, cache=str(tmp_path),
                              timeout=0.5, max_concurrency=16, progress=False)
        assert out.notna().all()
        assert limiter_for(sim.base_url).in_flight == 0
    rep = pla.last_report()
    assert rep is not None and rep.retries > 0 and rep.failed == 0


def test_in_flight_balanced_after_cancel(tmp_path: Any) -> None:
    df = pd.DataFrame({"text": [f"message {i}" for i in range(400)]})

    async def main(base_url: str) -> None:
        task = asyncio.ensure_future(df.llm.aannotate(
            "text", model="m", base_url=base_url, cache=str(tmp_path), max_concurrency=8,
            progress=False))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with serve(latency=0.1) as sim:
        asyncio.run(main(sim.base_url))
        assert limiter_for(sim.base_url).in_flight == 0
    rep = pla.last_report()
    assert rep is not None and rep.status == "interrupted"
    assert 0 < rep.requests < 400
    assert "saved in cache" in rep.message
