"""A tiny OpenAI-style server on 127.0.0.1, for answers the simulator cannot give.

`LocalServer(reply)` runs a real aiohttp application on its own thread and loop.
`reply(body)` gets the parsed JSON request body and returns the answer content (a
`str`, wrapped in a proper chat completion), an `aiohttp.web.Response` sent as is
(non-JSON bodies, error statuses...) or a `Streamer`: an async function given the
request that writes its own answer (endless bodies, slow streams...). Every request
body is recorded. `get`, when given, answers GET requests on any path (e.g. where a
redirect points); `gets` counts them.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import web

Streamer = Callable[[web.Request], Awaitable[web.StreamResponse]]
Reply = Callable[[dict[str, Any]], "str | web.StreamResponse | Streamer"]


def user_text(body: dict[str, Any]) -> str:
    """The text being labelled: the content of the last user message."""
    return str([m for m in body["messages"] if m["role"] == "user"][-1]["content"])


def completion(content: str, model: str = "local") -> dict[str, Any]:
    return {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }


class LocalServer:
    """Use as `with LocalServer(reply) as server: ... server.base_url ...`."""

    def __init__(self, reply: Reply, *, get: Streamer | None = None) -> None:
        self.reply = reply
        self.get = get
        self.gets = 0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="local-llm", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.bodies)

    def texts(self) -> Counter[str]:
        """How often each text was asked."""
        with self._lock:
            return Counter(user_text(b) for b in self.bodies)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        with self._lock:
            self.bodies.append(body)
            self.headers.append(dict(request.headers))
        out = self.reply(body)
        if isinstance(out, web.StreamResponse):
            return out
        if callable(out):
            return await out(request)
        return web.json_response(completion(out, body.get("model", "local")))

    async def _handle_get(self, request: web.Request) -> web.StreamResponse:
        assert self.get is not None
        with self._lock:
            self.gets += 1
        return await self.get(request)

    async def _main(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        if self.get is not None:
            app.router.add_get("/{path:.*}", self._handle_get)
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

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    def __enter__(self) -> LocalServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("local server did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
