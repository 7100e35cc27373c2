"""Hostile servers on 127.0.0.1: every byte read is bounded, a badly shaped answer
costs one row a retry (never the run), credentials never show, redirects are refused."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from helpers.hostile import MIB, endless, gzip_bomb, gzip_response, sse_delta
from helpers.local_server import LocalServer

import pandas_llm_annotate as pla
from pandas_llm_annotate.config import Settings
from pandas_llm_annotate.protocol.transport import Transport

LABELS = ["card_lost", "refund", "other"]
ROOT = Path(pla.__file__).resolve().parents[1]


def report() -> pla.Report:
    rep = pla.last_report()
    assert rep is not None
    return rep


def send_one(base_url: str, *, stream: bool = False, api_key: str | None = None,
             timeout: float = 20.0,
             max_response_bytes: int = Settings.max_response_bytes) -> Any:
    """One request through the transport; its answer or the exception it raised."""

    async def main() -> Any:
        transport = Transport(base_url, api_key=api_key, timeout=timeout, max_connections=2,
                              max_response_bytes=max_response_bytes)
        async with transport:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            try:
                return await transport.complete(body, stream=stream)
            except pla.AnnotateError as exc:
                return exc

    return asyncio.run(main())


# --- 1. every byte read is bounded --------------------------------------------------------

CHILD = """
import json, resource, sys
import pandas as pd
import pandas_llm_annotate as pla
from pandas_llm_annotate.config import Settings
base_url, cache = sys.argv[1], sys.argv[2]
texts = pd.Series([f"text {i}" for i in range(4)])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = texts.llm.annotate(model="m", base_url=base_url, max_retries=1, max_concurrency=4,
                         timeout=120, cache=cache, progress=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rep = pla.last_report()
print(json.dumps({"growth_mib": (after - before) / 1024, "nan": bool(out.isna().all()),
                  "errors": rep.failures["error"].tolist(), "status": rep.status}))
"""


def test_gzip_bomb_costs_the_row_not_the_memory(tmp_path: Path) -> None:
    bomb = gzip_bomb(2000)  # 2 MB on the wire, 2 GB inflated
    assert len(bomb) < 2.5 * MIB
    with LocalServer(lambda body: gzip_response(bomb)) as server:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-c", CHILD, server.base_url, str(tmp_path)],
                              capture_output=True, text=True, env=env, timeout=300)
        asked = server.requests
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    print("peak RSS growth for 4 gzip bombs at once (MiB):", result["growth_mib"])
    assert result["status"] == "finished"
    assert result["nan"]
    assert asked == 8  # 4 rows, each tried twice
    assert all("max_response_bytes" in error for error in result["errors"])
    assert len(result["errors"]) == 4
    assert result["growth_mib"] < 200


def test_an_oversized_answer_is_a_malformed_response() -> None:
    big = json.dumps({"choices": [{"message": {"content": "x" * 300_000}}]}).encode()
    with LocalServer(lambda body: gzip_response(gzip.compress(big))) as server:
        error = send_one(server.base_url, max_response_bytes=100_000)
        answer = send_one(server.base_url, max_response_bytes=400_000)
    assert isinstance(error, pla.MalformedResponse)
    assert "max_response_bytes=100000" in str(error)
    assert answer.content == "x" * 300_000


def test_an_endless_body_ends_at_the_cap_not_at_the_timeout(tmp_path: Path) -> None:
    block = b" " * 65536
    with LocalServer(lambda body: endless(block, first=b'{"choices": [')) as server:
        start = time.monotonic()
        error = send_one(server.base_url, timeout=20.0)
        elapsed = time.monotonic() - start
    assert isinstance(error, pla.MalformedResponse)
    assert "max_response_bytes" in str(error)
    assert elapsed < 5


def test_an_endless_stream_ends_at_the_cap() -> None:
    events = endless(sse_delta("a"), content_type="text/event-stream")
    with LocalServer(lambda body: events) as server:
        start = time.monotonic()
        error = send_one(server.base_url, stream=True, timeout=20.0)
        elapsed = time.monotonic() - start
    assert isinstance(error, pla.MalformedResponse)
    assert "max_response_bytes" in str(error)
    assert elapsed < 5


def test_an_endless_stream_line_is_cut_at_the_line_limit() -> None:
    line = endless(b"x" * 65536, first=sse_delta("a") + b"data: ",
                   content_type="text/event-stream")
    with LocalServer(lambda body: line) as server:
        start = time.monotonic()
        error = send_one(server.base_url, stream=True, timeout=20.0)
        elapsed = time.monotonic() - start
    assert isinstance(error, pla.MalformedResponse)
    assert "line" in str(error)
    assert elapsed < 5


def test_an_endless_error_body_is_read_only_in_part() -> None:
    error_body = endless(b"overloaded " * 6000, status=503, first=b'{"error": "busy"')
    with LocalServer(lambda body: error_body) as server:
        start = time.monotonic()
        error = send_one(server.base_url, timeout=20.0)
        elapsed = time.monotonic() - start
    assert isinstance(error, pla.ServerError)
    assert error.status == 503
    assert 60_000 <= len(error.body) <= 64 * 1024
    assert elapsed < 5


def test_failures_keep_only_a_preview_of_raw_answers(tmp_path: Path) -> None:
    long_answer = "not a label " * 20_000
    with LocalServer(lambda body: long_answer) as server:
        out = pd.Series(["a text"]).llm.annotate(labels=LABELS, model="m", structured=False,
                                                 base_url=server.base_url, cache=tmp_path,
                                                 progress=False)
    assert out.isna().all()
    raw = report().failures["raw_answer"].iloc[0]
    assert raw.startswith("not a label not a label")
    assert len(raw) <= 501
