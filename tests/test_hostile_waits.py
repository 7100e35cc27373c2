"""Hostile rate-limit answers from a real server on 127.0.0.1: a wait of days ends the
run with a clear error and leaves nothing paused; `retry-after: 0` (or nonsense) gets
no request storm."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiohttp import web
from helpers.local_server import LocalServer, user_text

import pandas_llm_annotate as pla
from pandas_llm_annotate.ratelimit import registry

GOOD = [f"answered {i}" for i in range(5)]
QUOTA = [f"over quota {i}" for i in range(5)]


class QuotaServer(LocalServer):
    """Answers GOOD at once; in "quota" mode refuses the rest, a little later, with a
    429 naming `wait`; in "good" mode answers everything."""

    def __init__(self, wait: str) -> None:
        super().__init__(self._reply)
        self.wait = wait
        self.mode = "quota"

    def _reply(self, body: dict[str, Any]) -> str | web.Response:
        if self.mode == "quota" and user_text(body) not in GOOD:
            return web.json_response({"error": {"message": "You exceeded your daily quota"}},
                                     status=429, headers={"retry-after": self.wait})
        return "ok"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "quota" and user_text(await request.json()) not in GOOD:
            await asyncio.sleep(0.3)  # the answered rows arrive first
        return await super()._handle(request)


def run(base_url: str, cache: Path, **options: Any) -> pd.Series:
    df = pd.DataFrame({"text": GOOD + QUOTA})

    async def bounded() -> pd.Series:  # a stall fails the test instead of hanging it
        return await asyncio.wait_for(df.llm.aannotate(
            "text", model="m", base_url=base_url, cache=str(cache), progress=False,
            **options), 20)

    return asyncio.run(bounded())


@pytest.mark.parametrize("wait", ["999999", "inf", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_wait_of_days_ends_the_run_and_a_rerun_continues(tmp_path: Path, wait: str) -> None:
    cache = tmp_path / "cache"
    with QuotaServer(wait) as server:
        start = time.monotonic()
        with pytest.raises(pla.RateLimitError) as info:
            run(server.base_url, cache)
        took = time.monotonic() - start
        message = str(info.value)
        report = pla.last_report()

        server.mode = "good"  # the quota was raised: the same server, the same limiter
        start = time.monotonic()
        out = run(server.base_url, cache)
        rerun = time.monotonic() - start
        rerun_report = pla.last_report()
    assert took < 3, took
    assert wait[:20] in message and "max_wait=300" in message and "quota" in message
    assert "rerun" in message and "cache" in message
    assert info.value.status == 429
    assert report is not None and report.status == "failed"
    # The rows answered before the 429 were kept; the rerun asks only for the rest,
    # at once: the shared limiter was not left paused.
    assert rerun < 2, rerun
    assert rerun_report is not None and rerun_report.cache_hits == len(GOOD)
    assert rerun_report.requests == len(QUOTA)
    assert out.tolist() == ["ok"] * 10
    limiter = next(v for k, v in registry._shared.items() if k[0] == server.base_url)
    assert limiter.paused_until < time.monotonic() + 1


def test_a_wait_under_max_wait_is_waited(tmp_path: Path) -> None:
    """The bound is an option: a 1 s wait with max_wait=0.5 ends the run, with the
    default it is waited out and every row answered."""
    with QuotaServer("1") as server, pytest.raises(pla.RateLimitError, match=r"max_wait=0\.5"):
        run(server.base_url, tmp_path / "a", max_wait=0.5)

    class Once(QuotaServer):
        def _reply(self, body: dict[str, Any]) -> str | web.Response:
            out = super()._reply(body)
            if isinstance(out, web.Response):
                self.mode = "good"  # one 429, then answers
            return out

    with Once("1") as server:
        start = time.monotonic()
        out = run(server.base_url, tmp_path / "b")
    assert out.tolist() == ["ok"] * 10
    assert time.monotonic() - start >= 1.0


def test_a_503_naming_a_wait_of_days_ends_the_run(tmp_path: Path) -> None:
    """Down for maintenance for 11 days: the retry would have slept that long."""
    def reply(body: dict[str, Any]) -> web.Response:
        return web.json_response({"error": {"message": "maintenance"}}, status=503,
                                 headers={"retry-after": "999999"})

    with LocalServer(reply) as server, pytest.raises(pla.ServerError) as info:
        run(server.base_url, tmp_path / "c")
    assert info.value.status == 503
    assert "retry-after: 999999" in str(info.value) and "max_wait=300" in str(info.value)


class Refusing(LocalServer):
    """A 429 naming `wait` for every request; records when each text was asked."""

    def __init__(self, wait: str) -> None:
        super().__init__(self._reply)
        self.wait = wait
        self.times: dict[str, list[float]] = defaultdict(list)

    def _reply(self, body: dict[str, Any]) -> web.Response:
        self.times[user_text(body)].append(time.monotonic())
        return web.json_response({"error": {"message": "slow down"}}, status=429,
                                 headers={"retry-after": self.wait})


@pytest.mark.parametrize(("wait", "rows", "retries"), [("0", 10, 3), ("-1", 2, 1), ("nan", 2, 1)])
def test_a_retry_after_of_zero_or_nonsense_is_no_request_storm(
        tmp_path: Path, wait: str, rows: int, retries: int) -> None:
    """Before: 53 requests per row in under a second, then the row failed. Now such a
    429 is a retry like any other (max_retries), and the run pauses at least MIN_PAUSE,
    longer at each new burst. (`-1` and `nan` say nothing, as a 429 without headers:
    the limiter also guesses a slower rate, so fewer rows keep the test short.)"""
    df = pd.DataFrame({"text": [f"text {i}" for i in range(rows)]})
    with Refusing(wait) as server:
        start = time.monotonic()
        out = df.llm.annotate("text", model="m", base_url=server.base_url,
                              max_retries=retries, cache=str(tmp_path / "c"), progress=False)
        took = time.monotonic() - start
    report = pla.last_report()
    assert out.isna().all()
    assert report is not None and report.status == "finished" and report.failed == rows
    per_row = {text: len(times) for text, times in server.times.items()}
    assert per_row == dict.fromkeys(df["text"], retries + 1)
    gaps = [b - a for times in server.times.values() for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.045
    assert took < 10, took
