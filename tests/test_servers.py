"""Several servers for one run (`base_url=[...]`), against simulators on 127.0.0.1: the
faster takes more, a server that stops or hangs mid-run loses no row, all servers down
is one clear error, each server's rate limit holds, and the cache does not care which
server answered."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiohttp import web
from helpers.local_server import LocalServer

import pandas_llm_annotate as pla
from pandas_llm_annotate.errors import ConfigError, ConnectError
from pandas_llm_annotate.pipeline.identity import server_identity
from pandas_llm_annotate.simulator import SimulatorHandle, serve

LABELS = ["card", "refund", "other"]


def texts(n: int, tag: str = "t") -> pd.Series:
    return pd.Series([f"{tag} text number {i}" for i in range(n)])


def run(values: pd.Series, urls: list[str], cache: Path, **options: Any) -> pd.Series:
    async def bounded() -> pd.Series:  # a stall fails the test instead of hanging it
        return await asyncio.wait_for(values.llm.aannotate(
            labels=LABELS, model="sim", base_url=urls, cache=str(cache), progress=False,
            **options), 60)

    return asyncio.run(bounded())


def asked(*sims: SimulatorHandle) -> list[int]:
    """Texts each simulator answered (each counted once per answer)."""
    return [sum(s.stats()["texts"].values()) for s in sims]


def test_the_faster_server_takes_the_larger_share(tmp_path: Path) -> None:
    with serve(latency=0.01, jitter=0.1, seed=1) as fast, \
            serve(latency=0.15, jitter=0.1, seed=2) as slow:
        out = run(texts(300), [fast.base_url, slow.base_url], tmp_path, max_concurrency=8)
        on_fast, on_slow = asked(fast, slow)
    report = out.attrs["llm_report"]
    assert out.notna().all() and report.failed == 0
    assert on_fast + on_slow == 300 == report.requests  # each text asked once, somewhere
    assert on_fast > 4 * on_slow  # ~15x faster: it takes most of the jobs
    servers = report.to_dict()["servers"]
    assert servers[fast.base_url]["answers"] == on_fast
    assert servers[slow.base_url]["answers"] == on_slow
    assert servers[fast.base_url]["share"] > 0.8
    assert servers[fast.base_url]["p50_s"] < servers[slow.base_url]["p50_s"]
    assert "<b>Servers</b> (2 servers)" in report._repr_html_()


def test_a_server_stopped_mid_run_loses_no_row(tmp_path: Path) -> None:
    with serve(latency=0.03, seed=1) as stays, serve(latency=0.03, seed=2) as stops:
        values = texts(400)

        async def main() -> pd.Series:
            task = asyncio.ensure_future(values.llm.aannotate(
                labels=LABELS, model="sim", base_url=[stays.base_url, stops.base_url],
                cache=str(tmp_path), progress=False, max_concurrency=8, max_retries=0))
            while (await asyncio.to_thread(stops.stats))["ok"] < 30:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(stops.close)  # it now refuses connections
            return await asyncio.wait_for(task, 60)

        out = asyncio.run(main())
        report = out.attrs["llm_report"]
        assert out.notna().all() and report.failed == 0  # max_retries=0: none was a retry
        servers = report.servers
        assert servers[stops.base_url]["set_aside"] >= 1
        assert servers[stops.base_url]["answers"] >= 30
        assert servers[stays.base_url]["answers"] + servers[stops.base_url]["answers"] == 400


def test_a_server_that_hangs_is_set_aside_and_its_requests_go_elsewhere(
        tmp_path: Path) -> None:
    with serve(latency=0.01, seed=1) as good, \
            serve(faults=1.0, fault_kinds=("hang",), hang=30, seed=2) as hangs:
        start = time.perf_counter()
        out = run(texts(200), [hangs.base_url, good.base_url], tmp_path,
                  max_concurrency=4, timeout=1.0, max_retries=0)
        took = time.perf_counter() - start
    report = out.attrs["llm_report"]
    assert out.notna().all() and report.failed == 0
    assert report.servers[hangs.base_url]["answers"] == 0
    assert report.servers[hangs.base_url]["set_aside"] >= 1
    assert took < 15  # set aside after its first timeouts, not one timeout per row


def test_every_server_down_is_one_clear_connect_error(tmp_path: Path) -> None:
    urls = []
    for seed in (1, 2):
        with serve(seed=seed) as sim:
            urls.append(sim.base_url)  # closed: nothing listens there any more
    start = time.perf_counter()
    with pytest.raises(ConnectError, match="None of the 2 servers answers") as info:
        run(texts(20), urls, tmp_path)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert all(url in message for url in urls) and "Cannot reach" in message
    assert pla.last_report().status == "failed"


def test_each_server_keeps_to_its_own_rate_limit(tmp_path: Path) -> None:
    # Each simulator allows 1,200 requests/min (20/s, bursts of 1 s) and says so in
    # its headers; together 40/s. 240 rows: about 5 s at 40/s, 11 s at one server's rate.
    with serve(latency=0.01, rpm=1200, seed=1) as one, \
            serve(latency=0.01, rpm=1200, seed=2) as two:
        start = time.perf_counter()
        out = run(texts(240), [one.base_url, two.base_url], tmp_path, max_concurrency=16)
        took = time.perf_counter() - start
        stats = [one.stats(), two.stats()]
    assert out.notna().all()
    assert all(s["rate_limited"] <= 3 for s in stats), [s["rate_limited"] for s in stats]
    assert all(s["ok"] >= 60 for s in stats)  # both carried real load
    assert took < 9  # faster than one server's limit allows


def test_the_runs_own_rpm_holds_for_all_its_servers_together(tmp_path: Path) -> None:
    # rpm=1200: 20 requests/s with a burst of 20, for the run; 60 rows take about 2 s
    # (each server at 20/s would take 0.5 s).
    with serve(latency=0.01, seed=1) as one, serve(latency=0.01, seed=2) as two:
        start = time.perf_counter()
        out = run(texts(60), [one.base_url, two.base_url], tmp_path, rpm=1200,
                  max_concurrency=4)
        took = time.perf_counter() - start
        on_one, on_two = asked(one, two)
    assert out.notna().all() and on_one > 0 and on_two > 0
    assert took > 1.6


def test_the_cache_does_not_care_which_server_answered(tmp_path: Path) -> None:
    values = texts(40)
    with serve(seed=1) as a, serve(seed=2) as b:
        first = run(values, [a.base_url, b.base_url], tmp_path)
    with serve(seed=3) as c, serve(seed=4) as d:  # new ports, another order
        again = run(values, [d.base_url, c.base_url], tmp_path)
        alone = run(values, [c.base_url], tmp_path)
    assert again.equals(first) and alone.equals(first)
    assert again.attrs["llm_report"].requests == 0 == alone.attrs["llm_report"].requests
    assert server_identity(["http://127.0.0.1:1/v1", "http://localhost:2/v1"]) == "local"
    assert server_identity(["https://b.example/v1", "https://a.example/v1",
                            "https://a.example:8443/v1"]) == "a.example,b.example"
    assert server_identity(["https://a.example/v1"]) == server_identity("https://a.example/v1")
    assert server_identity(["https://a/v1", "https://b/v1"], "farm") == "namespace:farm"


class Picky(LocalServer):
    """Refuses `json_schema` the way llama.cpp's server does (HTTP 500 naming it)."""

    def __init__(self) -> None:
        super().__init__(self.answer)

    def answer(self, body: dict[str, Any]) -> str | web.Response:
        if body.get("response_format", {}).get("type") == "json_schema":
            return web.json_response({"error": {"message": "response_format json_schema "
                                                "is not supported"}}, status=500)
        return '{"label": "card"}'


def test_each_server_negotiates_its_own_answer_format(tmp_path: Path) -> None:
    with Picky() as picky, LocalServer(lambda body: '{"label": "card"}') as easy:
        out = run(texts(60), [picky.base_url, easy.base_url], tmp_path, max_concurrency=2)
        picky_forms = [b.get("response_format", {}).get("type") for b in picky.bodies]
        easy_forms = {b.get("response_format", {}).get("type") for b in easy.bodies}
    assert out.eq("card").all()
    assert easy_forms == {"json_schema"}
    # refused (by the requests in flight then), then never sent again
    refused = picky_forms.count("json_schema")
    assert 1 <= refused <= 2 and set(picky_forms[:refused]) == {"json_schema"}
    assert set(picky_forms[refused:]) == {"json_object"} and len(picky_forms) > refused


def test_base_url_lists_are_checked() -> None:
    with pytest.raises(ConfigError, match="list of URLs"):
        pla.annotate(["x"], model="m", base_url=[])
    with pytest.raises(ConfigError, match="must start with http"):
        pla.annotate(["x"], model="m", base_url=["http://127.0.0.1:1/v1", "ftp://x"])
    settings = pla.configure(base_url=["http://127.0.0.1:1/v1/", " http://127.0.0.1:1/v1"])
    assert settings.base_urls == ("http://127.0.0.1:1/v1",)  # cleaned, each once
