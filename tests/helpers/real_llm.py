"""The real llama.cpp server for the `real_llm` tests, seen through a recording proxy.

`RecordingProxy(upstream_base_url)` is a real aiohttp server on 127.0.0.1 that forwards
`/v1/*` to the real server unchanged (JSON, and SSE chunk by chunk so time to first token
is kept) and records each chat completion as an `Exchange`: the request body, the status,
the answer text (the joined deltas for SSE), the finish reason and the times it was sent
and answered. The tests check what the package actually sent and got against that record,
not against the package's own account of it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pandas as pd
from aiohttp import web

from pandas_llm_annotate.protocol.packing import PACK_INSTRUCTIONS

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"


def banking77(n: int, *, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """`n` banking77 test rows (text, category), sampled with `seed`, and the 77 labels."""
    frame = pd.read_csv(SHARED_DATA / "banking77_test.csv").dropna()
    labels = json.loads((SHARED_DATA / "banking77_categories.json").read_text())
    sample = frame.sample(n=n, random_state=seed).reset_index(drop=True)
    return sample, [str(label) for label in labels]


def shared_data_missing() -> str | None:
    needed = [SHARED_DATA / "banking77_test.csv", SHARED_DATA / "banking77_categories.json"]
    absent = [str(p) for p in needed if not p.is_file()]
    return f"shared data not found: {', '.join(absent)}" if absent else None


def form_of(body: dict[str, Any]) -> str:
    """The structured-output form of a request body (see `structured.FORMS`)."""
    fmt = body.get("response_format")
    if not fmt:
        return "plain"
    if fmt.get("type") == "json_schema":
        return "json_schema"
    return "json_object+schema" if "schema" in fmt else "json_object"


@dataclass
class Exchange:
    """One chat completion as it went over the wire."""

    body: dict[str, Any]
    status: int  # -1: the client went away before the answer (cancelled)
    sent: float  # monotonic
    done: float
    content: str | None = None  # the answer text; None for an error
    error: str | None = None  # the body of an error answer
    finish_reason: str | None = None

    @property
    def form(self) -> str:
        return form_of(self.body)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def packed(self) -> bool:
        return any(PACK_INSTRUCTIONS in str(m.get("content", ""))
                   for m in self.body["messages"] if m["role"] == "system")

    @property
    def texts(self) -> list[str]:
        """The texts asked: a pack's rows in id order, or the one text."""
        user = str([m for m in self.body["messages"] if m["role"] == "user"][-1]["content"])
        if not self.packed:
            return [user]
        rows = json.loads(user)
        return [str(r["text"]) for r in sorted(rows, key=lambda r: int(r["id"]))]

    @property
    def key(self) -> str:
        """The request body, canonically: equal keys are identical requests."""
        return json.dumps(self.body, sort_keys=True, ensure_ascii=False)


def _sse_answer(raw: bytes) -> tuple[str, str | None]:
    parts: list[str] = []
    finish: str | None = None
    for line in raw.decode(errors="replace").splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        chunk = json.loads(payload)
        for choice in chunk.get("choices") or []:
            delta = (choice.get("delta") or {}).get("content")
            if delta:
                parts.append(delta)
            finish = choice.get("finish_reason") or finish
    return "".join(parts), finish


class RecordingProxy:
    """Use as `with RecordingProxy(server.base_url) as proxy: ... proxy.base_url ...`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")  # ends in /v1
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="llm-proxy", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def since(self, mark: int) -> list[Exchange]:
        """The exchanges recorded after `mark` (a former `len(proxy)`)."""
        with self._lock:
            return list(self.exchanges[mark:])

    def __len__(self) -> int:
        with self._lock:
            return len(self.exchanges)

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        sent = time.monotonic()
        assert self._session is not None
        exchange = Exchange(body=body, status=-1, sent=sent, done=sent)
        try:
            async with self._session.post(self.upstream + "/chat/completions", data=raw,
                                          headers={"Content-Type": "application/json"}) as up:
                exchange.status = up.status
                if up.status >= 400:
                    text = await up.text(errors="replace")
                    exchange.error = text
                    return web.Response(status=up.status, text=text,
                                        content_type=up.content_type)
                if body.get("stream"):
                    out = web.StreamResponse(status=up.status)
                    out.content_type = up.content_type
                    await out.prepare(request)
                    got = bytearray()
                    async for chunk in up.content.iter_any():
                        got += chunk
                        await out.write(chunk)
                    exchange.content, exchange.finish_reason = _sse_answer(bytes(got))
                    await out.write_eof()
                    return out
                data = await up.read()
                parsed = json.loads(data)
                choice = parsed["choices"][0]
                exchange.content = choice["message"]["content"]
                exchange.finish_reason = choice.get("finish_reason")
                return web.Response(status=up.status, body=data,
                                    content_type="application/json")
        finally:
            exchange.done = time.monotonic()
            self._record(exchange)

    async def _other(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        path = request.match_info["tail"]
        async with self._session.request(request.method, f"{self.upstream}/{path}",
                                         data=await request.read()) as up:
            return web.Response(status=up.status, body=await up.read(),
                                content_type=up.content_type)

    async def _main(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None)
        connector = aiohttp.TCPConnector(limit=0)
        self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_route("*", "/v1/{tail:.*}", self._other)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
            await self._session.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("recording proxy did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
