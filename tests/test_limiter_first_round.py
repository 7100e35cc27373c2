"""The limiter's first round, before a response has told the server's limits: large
(packed) requests go alone, and the simulator's TPM scenario draws no 429. Fake clock
for the policy; the simulator for the run."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

import pandas_llm_annotate as pla
from pandas_llm_annotate.ratelimit.limiter import LARGE_REQUEST, Limiter
from pandas_llm_annotate.simulator import serve

EPOCH = 1_700_000_000.0


def token_headers(tpm: int, left: int, reset: str) -> dict[str, str]:
    return {"x-ratelimit-limit-tokens": str(tpm), "x-ratelimit-remaining-tokens": str(left),
            "x-ratelimit-reset-tokens": reset}


def test_large_requests_go_alone_until_the_first_answer() -> None:
    lim = Limiter(max_concurrency=64)
    packed, short = 2 * LARGE_REQUEST, LARGE_REQUEST // 5
    assert lim.acquire(packed, 0.0) == 0
    assert lim.acquire(packed, 0.0) == math.inf  # waits for a release, not for a time
    assert lim.acquire(short, 0.0) == 0  # short rows keep the probe
    # 100,000 TPM, a 1 s bucket: 1,200 tokens left, full again in 280 ms
    lim.succeeded(0.3, token_headers(100_000, 1_200, "280ms"), EPOCH)
    assert lim.acquire(packed, 0.3) == 0  # the limits are known: the buckets decide
    assert 0.1 < lim.acquire(packed, 0.3) < 1.0


def test_packed_rows_against_a_shallow_token_bucket_draw_no_429(tmp_path: Any) -> None:
    """The benchmark's TPM scenario in small: 100,000 TPM in a 1 s bucket (1,667 tokens)
    and packed requests of several hundred tokens each. The first round sent 32 of them
    at once (all but one refused); now one goes, and its answer's headers pace the rest."""
    rows = pd.Series([f"message {i}: " + "about my card payment " * 6 for i in range(150)])
    with serve(latency=0.05, rpm=10_000, tpm=100_000, burst=1.0) as sim:
        out = rows.llm.annotate(labels=["card", "other"], model="m", base_url=sim.base_url,
                                cache=str(tmp_path), progress=False,
                                rows_per_request="auto")
        sent = sim.stats()["requests"]
    report = pla.last_report()
    assert report is not None and out.notna().all()
    assert report.rate_limited == 0 and sent == report.requests
