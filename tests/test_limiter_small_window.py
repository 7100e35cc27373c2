"""The queueing signal at a small cap (issue 17): a server working one request at a time
at max_concurrency=4 settles below the cap as at 8, and a parallel server keeps its cap.
Fake clock (`simulate` from test_limiter), twelve seeds each, so one lucky draw of the
first (the only unqueued) answer decides nothing."""

from __future__ import annotations

import math
import random

import pytest
from test_limiter import simulate

from pandas_llm_annotate.ratelimit.limiter import Limiter

SEEDS = range(12)


def serial(r: random.Random) -> float:
    return 0.2 * math.exp(r.gauss(0, 0.25))


def parallel(r: random.Random) -> float:
    return 0.3 * math.exp(r.gauss(0, 0.25))


@pytest.mark.parametrize("cap", [4, 8])
def test_a_one_at_a_time_server_settles_below_a_small_cap(cap: int) -> None:
    settled = 0
    for seed in SEEDS:
        answers, windows = simulate(Limiter(max_concurrency=cap), serve_time=serial,
                                    parallel=1, seconds=60, rng=random.Random(seed))
        settled += windows[-1] < cap
        assert answers >= 0.95 * 60 / 0.2 / math.exp(0.25**2 / 2)  # the server never idles
    assert settled >= len(SEEDS) - 1  # measured: 11 of 12 at both caps


@pytest.mark.parametrize("cap", [4, 8, 64])
def test_a_parallel_server_keeps_a_small_cap(cap: int) -> None:
    for seed in SEEDS:
        answers, windows = simulate(Limiter(max_concurrency=cap), serve_time=parallel,
                                    parallel=None, seconds=30, rng=random.Random(seed))
        assert min(windows[len(windows) // 4:]) == cap
        assert answers >= 0.97 * cap * 30 / (0.3 * math.exp(0.25**2 / 2))
