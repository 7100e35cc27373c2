"""Hostile servers on 127.0.0.1: every byte read is bounded (a gzip bomb, endless
bodies, streams and error bodies), and a badly shaped answer costs one row a retry,
never the run."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiohttp import web
from helpers.checks import report
from helpers.expected import sim_answer
from helpers.hostile import (
    MIB,
    endless,
    gzip_bomb,
    gzip_response,
    sse_delta,
    sse_event,
    sse_response,
)
from helpers.local_server import LocalServer, user_text

import pandas_llm_annotate as pla
from pandas_llm_annotate.config import Settings
from pandas_llm_annotate.protocol.transport import Transport

LABELS = ["card_lost", "refund", "other"]
ROOT = Path(pla.__file__).resolve().parents[1]


def send_one(base_url: str, *, stream: bool = False, timeout: float = 20.0,
             max_response_bytes: int = Settings.max_response_bytes) -> Any:
    """One request through the transport; its answer or the exception it raised."""

    async def main() -> Any:
        transport = Transport(base_url, api_key=None, timeout=timeout, max_connections=2,
                              max_response_bytes=max_response_bytes)
        async with transport:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            try:
                return await transport.complete(body, stream=stream)
            except pla.AnnotateError as exc:
                return exc

    return asyncio.run(main())


def timed_send(base_url: str, *, stream: bool = False) -> tuple[Any, float]:
    """`send_one` with a 20 s timeout, and the seconds it took."""
    start = time.monotonic()
    error = send_one(base_url, stream=stream, timeout=20.0)
    return error, time.monotonic() - start


# --- every byte read is bounded (issue 12, point 1) ---------------------------------------

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
        error, elapsed = timed_send(server.base_url)
    assert isinstance(error, pla.MalformedResponse)
    assert "max_response_bytes" in str(error)
    assert elapsed < 5


def test_an_endless_stream_ends_at_the_cap() -> None:
    events = endless(sse_delta("a"), content_type="text/event-stream")
    with LocalServer(lambda body: events) as server:
        error, elapsed = timed_send(server.base_url, stream=True)
    assert isinstance(error, pla.MalformedResponse)
    assert "max_response_bytes" in str(error)
    assert elapsed < 5


def test_an_endless_stream_line_is_cut_at_the_line_limit() -> None:
    line = endless(b"x" * 65536, first=sse_delta("a") + b"data: ",
                   content_type="text/event-stream")
    with LocalServer(lambda body: line) as server:
        error, elapsed = timed_send(server.base_url, stream=True)
    assert isinstance(error, pla.MalformedResponse)
    assert "line" in str(error)
    assert elapsed < 5


def test_an_endless_error_body_is_read_only_in_part() -> None:
    error_body = endless(b"overloaded " * 6000, status=503, first=b'{"error": "busy"')
    with LocalServer(lambda body: error_body) as server:
        error, elapsed = timed_send(server.base_url)
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


# --- a badly shaped 200 costs its row a retry, never the run (issue 12, point 4) ----------


def _choice(content: Any) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


BAD_JSON: list[Any] = [
    {**_choice("refund"), "usage": "lots"},
    {**_choice("refund"), "usage": {"prompt_tokens": "ten", "completion_tokens": 2}},
    {**_choice("refund"), "usage": {"prompt_tokens": 10, "completion_tokens": -2}},
    {**_choice("refund"), "usage": {"prompt_tokens": True}},
    [_choice("refund")],
    "refund",
    {"choices": []},
    {"choices": {"0": {"message": {"content": "refund"}}}},
    {"choices": ["refund"]},
    {"choices": [{"message": "refund"}]},
    _choice(None),
    _choice(["refund"]),
]
NESTED = b"[" * 200_000  # a RecursionError in json.loads, not a ValueError


def _json_reply(shape: Any) -> web.Response:
    body = shape if isinstance(shape, bytes) else json.dumps(shape).encode()
    return web.Response(body=body, content_type="application/json")


BAD_SSE: list[bytes] = [
    sse_event({"choices": {"0": {"delta": {"content": "refund"}}}}),
    sse_event({"choices": [1]}),
    sse_event({"choices": [{"delta": "refund"}]}),
    sse_event({"choices": [{"delta": {"content": 42}}]}),
    sse_delta("refund") + sse_event({"choices": [], "usage": "lots"}),
    sse_delta("refund") + sse_event({"choices": [], "usage": {"prompt_tokens": 1.5}}),
    sse_event([1, 2]),
    sse_event("{not json"),
    b"data: " + b"x" * (2 * MIB) + b"\n\n",  # one line over the line limit
    sse_event({"error": {"message": "model overloaded"}}),
]


def _sse_reply(bad: bytes | None, answer: str) -> web.Response:
    good = sse_delta(answer) + sse_delta("", finish="stop")
    return sse_response([bad if bad is not None else good, sse_event("[DONE]")])


def _hostile(stream: bool) -> Callable[[dict[str, Any]], Any]:
    """`bad i` always answers shape i; `flaky i` answers shape i, then well; else well."""
    shapes: list[Any] = BAD_SSE if stream else [*BAD_JSON, NESTED]
    seen: Counter[str] = Counter()

    def reply(body: dict[str, Any]) -> Any:
        text = user_text(body)
        seen[text] += 1
        kind, _, number = text.partition(" ")
        bad = kind == "bad" or (kind == "flaky" and seen[text] == 1)
        shape = shapes[int(number)] if bad else None
        answer = sim_answer(text, labels=LABELS)
        if stream:
            return _sse_reply(shape, answer)
        return _json_reply(shape) if bad else answer

    return reply


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_badly_shaped_answers_cost_a_retry_not_the_run(tmp_path: Path, stream: bool) -> None:
    shapes = len(BAD_SSE) if stream else len(BAD_JSON) + 1
    bad = [f"bad {i}" for i in range(shapes)]
    flaky = [f"flaky {i}" for i in range(shapes)]
    good = [f"good {i}" for i in range(20)]
    df = pd.DataFrame({"text": [*good, *flaky, *bad]})
    with LocalServer(_hostile(stream)) as server:
        out = df.llm.annotate("text", labels=LABELS, model="m", base_url=server.base_url,
                              stream=stream, max_retries=1, cache=tmp_path, progress=False)
        asked = server.texts()
    rep = report()
    assert rep.status == "finished"
    expected = [sim_answer(t, labels=LABELS) for t in [*good, *flaky]]
    assert out[: len(good) + len(flaky)].tolist() == expected
    assert out[len(good) + len(flaky):].isna().all()
    assert sorted(rep.failures["text"]) == sorted(bad)
    assert rep.failures["error"].str.len().min() > 10
    assert {t: asked[t] for t in bad} == dict.fromkeys(bad, 2)
    assert {t: asked[t] for t in flaky} == dict.fromkeys(flaky, 2)
    assert {t: asked[t] for t in good} == dict.fromkeys(good, 1)


def test_a_server_that_ignores_stream_is_read_as_a_whole_answer(tmp_path: Path) -> None:
    """A server that answers a streamed request with one JSON body (it ignores `stream`):
    read as a whole answer, not a broken event stream."""
    df = pd.DataFrame({"text": [f"text {i}" for i in range(10)]})
    with LocalServer(lambda body: "other") as server:
        out = df.llm.annotate("text", labels=["card", "other"], model="local",
                              base_url=server.base_url, cache=False, progress=False,
                              stream=True)
        sent = server.requests
    assert (out == "other").all() and report().failed == 0
    assert sent == 10
