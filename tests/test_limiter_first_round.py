"""The limiter's first round, before a response has told the server's limits: large
(packed) requests go alone, and the simulator's TPM scenario draws no 429. Fake clock
for the policy; the simulator for the run."""

from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd
import pytest

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


def test_the_probe_ends_at_the_first_success_headers() -> None:
    """Headers of a success that come before its answer (a streamed request's, at its
    first token) tell the limits: the probe ends then, not with the first whole answer."""
    for headers in ({}, {"x-ratelimit-limit-requests": "2400",
                         "x-ratelimit-remaining-requests": "8",
                         "x-ratelimit-reset-requests": "1s"}):
        lim = Limiter(max_concurrency=64)
        for _ in range(32):
            assert lim.acquire(1.0, 0.0) == 0
        assert lim.acquire(1.0, 0.0) == math.inf  # the probe: 32 until the limits are known
        assert lim.admitted(0.05, headers, EPOCH)  # the probe ends here
        assert not lim.admitted(0.06, headers, EPOCH)  # once
        assert lim.limit == 64
        if not headers:  # no limits: the whole window at once
            assert all(lim.acquire(1.0, 0.05) == 0 for _ in range(32))
            assert lim.acquire(1.0, 0.05) == math.inf
        else:  # the bucket the headers tell paces the rest: a wait, not the probe's
            assert lim.requests is not None and 0 < lim.acquire(1.0, 0.05) < 1.0


def test_a_streamed_run_ends_the_probe_at_the_first_token(tmp_path: Any) -> None:
    """stream=True: the first success's headers come with its first token (the
    simulator's at 0.3 of the latency), and they end the probe, before any whole answer.
    A bucket of 40 with 64 in flight: no 429."""
    from pandas_llm_annotate.protocol import transport

    opened: list[float] = []  # when each request went out
    first_answer: list[float] = []  # when each answer was in
    complete = transport.Transport.complete

    async def timed(self: Any, body: Any, **options: Any) -> Any:
        opened.append(time.monotonic())
        out = await complete(self, body, **options)
        first_answer.append(time.monotonic())
        return out

    rows = pd.Series([f"message number {i}" for i in range(200)])
    with serve(latency=1.0, jitter=0.0, rpm=2400, burst=1.0) as sim, \
            pytest.MonkeyPatch.context() as patch:
        patch.setattr(transport.Transport, "complete", timed)
        start = time.monotonic()
        out = rows.llm.annotate(labels=["card", "other"], model="m", base_url=sim.base_url,
                                cache=str(tmp_path), progress=False, max_concurrency=64,
                                stream=True)
        stats = sim.stats()
    report = pla.last_report()
    assert report is not None and out.notna().all() and report.failed == 0
    assert stats["rate_limited"] == 0
    # the 33rd request went out at the first token (0.3 s), not the first answer (1 s)
    assert opened[32] - start < min(first_answer) - start - 0.2
