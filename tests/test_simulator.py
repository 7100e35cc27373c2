"""Tests of the embedded OpenAI-compatible simulator, against a real loopback server.

Every test that talks HTTP starts `serve()` inside a running event loop (as
in Jupyter) and uses aiohttp, so the "works inside a running loop" promise is
exercised throughout.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pandas_llm_annotate.simulator import (
    SimulatorConfig,
    SimulatorHandle,
    answer_messages,
    answer_text,
    count_tokens,
    serve,
)
from pandas_llm_annotate.simulator.buckets import go_duration

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
LABELS = ["billing_issue", "shipping_delay", "account_access"]
SYSTEM = "Classify the text.\n\nLabels:\n" + "\n".join(f"- {x}" for x in LABELS)
RATE_HEADERS = [
    f"x-ratelimit-{what}-{kind}"
    for what in ("limit", "remaining", "reset")
    for kind in ("requests", "tokens")
]


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async test body in a fresh event loop."""

    async def main() -> T:
        return await coro_fn()

    return asyncio.run(main())


def body(text: str, system: str | None = SYSTEM, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return {"model": "m", "messages": messages, **extra}


async def post(
    session: aiohttp.ClientSession,
    sim: SimulatorHandle,
    payload: Any,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """POST to chat completions; (status, lower-cased headers, JSON body)."""
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(payload, bytes):
        kwargs["data"] = payload
    else:
        kwargs["json"] = payload
    async with session.post(sim.base_url + "/chat/completions", **kwargs) as r:
        data = await r.json(content_type=None)
        return r.status, {k.lower(): v for k, v in r.headers.items()}, data


def content(data: dict[str, Any]) -> str:
    text: str = data["choices"][0]["message"]["content"]
    return text


# --- answers (pure functions) -------------------------------------------------


def test_estimates_and_durations() -> None:
    assert count_tokens("") == 1
    assert count_tokens("abcdefgh") == 1  # a word: a token per 8 letters
    assert count_tokens(" abcdefghi") == 2
    assert count_tokens("card_payment_fee") == 5  # card _ payment _ fee
    assert count_tokens("1234567") == 3  # digits in threes
    assert count_tokens("Hi, you!\n") == 5  # Hi , ␣you ! ⏎
    assert count_tokens("你好世界") == 4
    assert go_duration(360) == "6m0s"
    assert go_duration(1.2) == "1.2s"
    assert go_duration(0.012) == "12ms"
    assert go_duration(0) == "0s"
    assert go_duration(3600) == "1h0m0s"


def test_free_text_answers() -> None:
    assert answer_text("Refund requested for damaged headphones") == "requested headphones"
    assert answer_text("我的快递还没有到") == "我的快递"
    assert answer_text("123 !!") == "misc"
    assert answer_text("") == "misc"


def test_response_format_labels_and_wrapping() -> None:
    msgs = [{"role": "user", "content": "my shipping is late"}]
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": LABELS}},
        "required": ["label"],
    }
    rf_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    rf_object = {"type": "json_object", "schema": schema}
    for rf in (rf_schema, rf_object):
        text, texts = answer_messages(msgs, rf)
        assert json.loads(text) == {"label": "shipping_delay"}
        assert texts == ["my shipping is late"]
    # json mode without a schema still answers JSON.
    assert json.loads(answer_messages(msgs, {"type": "json_object"})[0]) == {
        "label": "shipping late"
    }


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(max_size=80),
    labels=st.lists(st.text(min_size=1, max_size=20).map(str.strip), min_size=1, max_size=6),
)
def test_answer_properties(text: str, labels: list[str]) -> None:
    labels = [x for x in labels if x] or ["x"]
    got = answer_text(text, tuple(labels))
    assert got in labels
    assert answer_text(text, tuple(labels)) == got  # deterministic
    phrase = answer_text(text)
    assert phrase and phrase == phrase.lower() and 1 <= len(phrase.split()) <= 3


# --- the server ---------------------------------------------------------------------


def test_label_answer_is_deterministic() -> None:
    async def main() -> None:
        answers = []
        for seed in (0, 1):  # different latencies, same answers
            with serve(latency=0.005, jitter=0.5, seed=seed) as sim:
                async with aiohttp.ClientSession() as s:
                    got = []
                    for text in (
                        "My package shipping is delayed again",
                        "I cannot log into my account",
                        "hello there",  # no overlap: stable hash picks
                        "My package shipping is delayed again",
                    ):
                        status, _, data = await post(s, sim, body(text))
                        assert status == 200
                        assert data["object"] == "chat.completion"
                        assert data["choices"][0]["finish_reason"] == "stop"
                        got.append(content(data))
                    answers.append(got)
        assert answers[0] == answers[1]
        assert answers[0][:2] == ["shipping_delay", "account_access"]
        assert answers[0][2] in LABELS
        assert answers[0][3] == answers[0][0]

    run(main)


def test_free_text_over_http_and_usage() -> None:
    async def main() -> None:
        with serve() as sim:
            async with aiohttp.ClientSession() as s:
                text = "Refund requested for damaged headphones"
                status, _, data = await post(s, sim, body(text, system="Topic?"))
                assert status == 200
                assert content(data) == "requested headphones"
                usage = data["usage"]
                # 3 per message and 3 for the answer: Topic ? / Refund ␣requested ...
                assert usage["prompt_tokens"] == 2 + 7 + 3 * 2 + 3
                assert usage["prompt_tokens"] == count_tokens("Topic?") + count_tokens(text) + 9
                assert usage["completion_tokens"] == 4  # requested ␣headphones: 2 + 2
                assert usage["total_tokens"] == usage["prompt_tokens"] + 4

    run(main)


def test_auth() -> None:
    async def main() -> None:
        with serve(api_key="sk-test") as sim:
            async with aiohttp.ClientSession() as s:
                for headers in (None, {"Authorization": "Bearer wrong"}):
                    status, _, data = await post(s, sim, body("hi"), headers)
                    assert status == 401
                    assert data["error"]["code"] == "invalid_api_key"
                    assert data["error"]["type"] == "invalid_request_error"
                    assert data["error"]["message"] == "Incorrect API key provided"
                ok = {"Authorization": "Bearer sk-test"}
                status, _, _ = await post(s, sim, body("hi"), ok)
                assert status == 200
                async with s.get(sim.base_url + "/models") as r:
                    assert r.status == 401
                async with s.get(sim.base_url + "/models", headers=ok) as r:
                    assert r.status == 200
            assert sim.stats()["unauthorized"] == 3

    run(main)


def test_unknown_model_and_bad_requests() -> None:
    async def main() -> None:
        with serve(models=["m1", "m2"]) as sim:
            async with aiohttp.ClientSession() as s:
                status, _, data = await post(s, sim, {**body("hi"), "model": "x"})
                assert status == 404
                assert data["error"]["code"] == "model_not_found"
                assert data["error"]["message"] == "The model `x` does not exist"
                assert (await post(s, sim, {**body("hi"), "model": "m2"}))[0] == 200
                for bad in (b"{not json", {"model": "m1"}, {"model": "m1", "messages": []}):
                    status, _, data = await post(s, sim, bad)
                    assert status == 400
                    assert data["error"]["type"] == "invalid_request_error"
                async with s.get(sim.base_url + "/models") as r:
                    ids = [m["id"] for m in (await r.json())["data"]]
                assert ids == ["m1", "m2"]

    run(main)


def test_rate_limit_requests() -> None:
    async def main() -> None:
        with serve(rpm=60, tpm=60000, burst=1) as sim:  # 1 request, 1/s refill
            async with aiohttp.ClientSession() as s:
                status, headers, _ = await post(s, sim, body("hi"))
                assert status == 200
                assert all(h in headers for h in RATE_HEADERS)
                assert headers["x-ratelimit-limit-requests"] == "60"
                assert headers["x-ratelimit-remaining-requests"] == "0"
                assert headers["x-ratelimit-reset-requests"].endswith(("ms", "s"))
                status, headers, data = await post(s, sim, body("hi"))
                assert status == 429
                assert data["error"]["type"] == "requests"
                assert data["error"]["code"] == "rate_limit_exceeded"
                assert 0 < int(headers["retry-after-ms"]) <= 1000
                assert headers["retry-after"] == "1"
                assert all(h in headers for h in RATE_HEADERS)
                # Waiting as told is enough.
                await asyncio.sleep(int(headers["retry-after-ms"]) / 1000)
                assert (await post(s, sim, body("hi")))[0] == 200
            stats = sim.stats()
            assert stats["rate_limited"] == 1 and stats["ok"] == 2

    run(main)


def test_rate_limit_tokens() -> None:
    async def main() -> None:
        # 20-token bucket; "hi" costs 7 prompt tokens (1 + 3 for the message + 3 for the
        # answer's start) + max_tokens 4.
        with serve(tpm=1200, burst=1) as sim:
            async with aiohttp.ClientSession() as s:
                req = body("hi", system=None, max_tokens=4)
                status, headers, _ = await post(s, sim, req)
                assert status == 200 and headers["x-ratelimit-remaining-tokens"] == "9"
                assert "x-ratelimit-limit-requests" not in headers  # rpm unlimited
                status, headers, data = await post(s, sim, req)
                assert status == 429 and data["error"]["type"] == "tokens"
                assert 0 < int(headers["retry-after-ms"]) <= 200

    run(main)


def test_no_rate_headers() -> None:
    async def main() -> None:
        with serve(rpm=60, tpm=60000, burst=1, rate_headers=False) as sim:
            async with aiohttp.ClientSession() as s:
                for expected in (200, 429):
                    status, headers, _ = await post(s, sim, body("hi"))
                    assert status == expected
                    assert not any(h.startswith("x-ratelimit") for h in headers)
                    assert "retry-after" not in headers and "retry-after-ms" not in headers

    run(main)


def test_capacity_503() -> None:
    async def main() -> None:
        with serve(capacity=1, latency=0.3, jitter=0) as sim:
            async with aiohttp.ClientSession() as s:
                first = asyncio.ensure_future(post(s, sim, body("a")))
                await asyncio.sleep(0.1)
                rest = await asyncio.gather(*(post(s, sim, body(t)) for t in "bc"))
                statuses = [(await first)[0]] + [r[0] for r in rest]
                assert statuses == [200, 503, 503]
                assert rest[0][2]["error"]["message"] == "The server is overloaded"
            stats = sim.stats()
            assert stats["overloaded"] == 2 and stats["max_in_flight"] == 1

    run(main)


def test_workers_queue_in_order_and_finish_abandoned_requests() -> None:
    """workers=1: requests wait their turn (0.2 s each), and one whose client gave up
    still holds the worker for its turn, as llama.cpp's server does."""
    async def main() -> None:
        with serve(workers=1, latency=0.2, jitter=0) as sim:
            async with aiohttp.ClientSession() as s:
                gone = asyncio.ensure_future(post(s, sim, body("a")))
                await asyncio.sleep(0.05)
                gone.cancel()  # the client leaves; the server still works on it
                await asyncio.sleep(0.01)
                start = time.monotonic()
                done = await asyncio.gather(*(post(s, sim, body(t)) for t in "bc"))
                elapsed = time.monotonic() - start
            assert [d[0] for d in done] == [200, 200]
            assert 0.48 <= elapsed < 0.8  # ~0.14 s left of the abandoned turn, then 0.2 + 0.2
            stats = sim.stats()
            assert stats["abandoned"] == 1 and stats["overloaded"] == 0

    run(main)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", ["error", "reset", "hang", "malformed"])
def test_each_fault_kind(kind: str, stream: bool) -> None:
    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=0.3)
        with serve(faults=1.0, fault_kinds=[kind], hang=5.0, latency=0.01) as sim:
            async with aiohttp.ClientSession(timeout=timeout) as s:
                url = sim.base_url + "/chat/completions"
                req = body("some text", stream=stream)
                if kind == "error":
                    async with s.post(url, json=req) as r:
                        assert r.status == 500
                        assert (await r.json())["error"]["type"] == "server_error"
                elif kind == "reset":
                    with pytest.raises(aiohttp.ClientError):
                        async with s.post(url, json=req) as r:
                            await r.read()
                elif kind == "hang":
                    with pytest.raises(asyncio.TimeoutError):
                        async with s.post(url, json=req) as r:
                            await r.read()
                else:
                    async with s.post(url, json=req) as r:
                        assert r.status == 200
                        raw = await r.text()
                    with pytest.raises(ValueError):
                        if stream:
                            for line in raw.splitlines():
                                if line.startswith("data: {"):
                                    json.loads(line[6:])
                        else:
                            json.loads(raw)
            await asyncio.sleep(0.05)  # let the server see a timed-out client leave
            stats = sim.stats()
            assert stats["faults"][kind] == 1
            assert stats["ok"] == 0 and stats["texts"] == {} and stats["in_flight"] == 0
            assert stats["abandoned"] == (1 if kind == "hang" else 0)

    run(main)


def test_faults_are_seeded() -> None:
    async def statuses(seed: int) -> list[int]:
        with serve(faults=0.5, fault_kinds=["error"], seed=seed) as sim:
            async with aiohttp.ClientSession() as s:
                return [(await post(s, sim, body(str(i))))[0] for i in range(40)]

    async def main() -> None:
        a, b, c = await statuses(3), await statuses(3), await statuses(4)
        assert a == b and a != c
        assert 5 < a.count(500) < 35 and set(a) == {200, 500}

    run(main)


async def stream_answer(
    s: aiohttp.ClientSession, sim: SimulatorHandle, req: dict[str, Any]
) -> tuple[str, list[dict[str, Any]], float]:
    """(assembled content, chunks, seconds to the first content chunk)."""
    chunks: list[dict[str, Any]] = []
    start = time.perf_counter()
    first = 0.0
    async with s.post(sim.base_url + "/chat/completions", json=req) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        lines = []
        async for raw in r.content:
            line = raw.decode().strip()
            if line.startswith("data: "):
                lines.append(line[6:])
                if not first and '"content": "' in line and '"content": ""' not in line:
                    first = time.perf_counter() - start
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(x) for x in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return text, chunks, first


def test_stream_matches_non_stream() -> None:
    async def main() -> None:
        with serve(latency=0.2, jitter=0) as sim:
            async with aiohttp.ClientSession() as s:
                for req in (body("shipping is late"), body("Lovely weather today", None)):
                    _, _, plain = await post(s, sim, req)
                    streamed = {**req, "stream": True, "stream_options": {"include_usage": True}}
                    start = time.perf_counter()
                    text, chunks, ttft = await stream_answer(s, sim, streamed)
                    assert time.perf_counter() - start >= 0.15
                    assert 0.03 <= ttft <= 0.17  # ~30% of the latency, well before the end
                    assert text == content(plain)
                    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
                    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
                    assert chunks[-1]["choices"] == []
                    assert chunks[-1]["usage"] == plain["usage"]
                    # Without include_usage: no usage chunk.
                    text, chunks, _ = await stream_answer(s, sim, {**req, "stream": True})
                    assert text == content(plain) and all(c["choices"] for c in chunks)
                    assert all("usage" not in c for c in chunks)
            assert sim.stats()["streamed"] == 4

    run(main)


def test_packed_request() -> None:
    async def main() -> None:
        items: list[dict[str, Any]] = [
            {"id": 1, "text": "my shipping is delayed"},
            {"id": "b", "text": "cannot access my account"},
            {"id": 3, "text": "Refund requested for damaged headphones"},
        ]
        with serve() as sim:
            async with aiohttp.ClientSession() as s:
                status, _, data = await post(s, sim, body(json.dumps(items)))
                assert status == 200
                answer = json.loads(content(data))
                assert answer["1"] == "shipping_delay"
                assert answer["b"] == "account_access"
                assert answer["3"] in LABELS
                # Each item is answered as if asked alone.
                _, _, alone = await post(s, sim, body(items[2]["text"]))
                assert answer["3"] == content(alone)
                # Without labels: free-text answers per item.
                _, _, free = await post(s, sim, body(json.dumps(items[2:]), system=None))
                assert json.loads(content(free)) == {"3": "requested headphones"}
            texts = sim.stats()["texts"]
            assert texts == {
                "my shipping is delayed": 1,
                "cannot access my account": 1,
                "Refund requested for damaged headphones": 3,
            }

    run(main)


def test_stats_and_reset() -> None:
    async def main() -> None:
        with serve(api_key="k") as sim:
            auth = {"Authorization": "Bearer k"}
            async with aiohttp.ClientSession() as s:
                for text in ("a text", "a text", "another text"):
                    assert (await post(s, sim, body(text), auth))[0] == 200
                assert (await post(s, sim, body("x")))[0] == 401
            stats = sim.stats()
            assert stats["requests"] == 4 and stats["ok"] == 3
            assert stats["texts"] == {"a text": 2, "another text": 1}
            assert stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0
            assert stats["in_flight"] == 0 and stats["max_in_flight"] == 1
            # The HTTP endpoint says the same.
            assert SimulatorHandle.stats(sim) == stats
            sim.reset_stats()
            stats = sim.stats()
            assert stats["requests"] == stats["ok"] == stats["prompt_tokens"] == 0
            assert stats["texts"] == {}
            SimulatorHandle.reset_stats(sim)  # over HTTP too
        assert sim.stats()["requests"] == 0  # last counters survive close()

    run(main)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(faults=2.0)
    with pytest.raises(ValueError):
        SimulatorConfig(fault_kinds=["nope"])
    with pytest.raises(ValueError, match="workers"):
        SimulatorConfig(workers=-1)
    with pytest.raises(ValueError, match="non-loopback"):
        serve(host="192.0.2.1")


def test_subprocess_mode() -> None:
    async def main() -> None:
        sim = serve(subprocess=True, latency=0.01, api_key="k", models=["m"])
        with sim:
            assert sim.base_url.startswith("http://127.0.0.1:")
            async with aiohttp.ClientSession() as s:
                auth = {"Authorization": "Bearer k"}
                status, _, data = await post(s, sim, body("shipping is late"), auth)
                assert status == 200 and content(data) == "shipping_delay"
            stats = sim.stats()
            assert stats["ok"] == 1 and stats["texts"] == {"shipping is late": 1}
            sim.reset_stats()
            assert sim.stats()["ok"] == 0
        # The child is gone: its port refuses connections.
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", sim.port), 1):
            pass

    run(main)


def test_subprocess_takes_its_key_from_the_environment_not_argv() -> None:
    key = "sk-sim-key-not-on-the-command-line"

    async def main() -> None:
        with serve(subprocess=True, latency=0.01, api_key=key) as sim:
            cmdline = Path(f"/proc/{sim.pid}/cmdline").read_bytes()
            async with aiohttp.ClientSession() as s:
                assert (await post(s, sim, body("x")))[0] == 401
                auth = {"Authorization": f"Bearer {key}"}
                assert (await post(s, sim, body("shipping is late"), auth))[0] == 200
        assert key.encode() not in cmdline and b"--api-key" not in cmdline

    run(main)


def test_cli_refuses_remote_host() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pandas_llm_annotate.simulator", "--host", "192.0.2.1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert proc.returncode == 2 and "--allow-remote" in proc.stderr
