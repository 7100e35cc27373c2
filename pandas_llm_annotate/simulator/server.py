"""The aiohttp application: auth, validation, limits, faults and answers.

Order of checks for ``POST /v1/chat/completions``: auth (401), body (400),
model (404), capacity (503), rate limits (429, checked on arrival), then a
seeded fault roll and a seeded log-normal latency before the answer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import time
from typing import Any

from aiohttp import web

from .answers import answer_messages, estimate_tokens, message_text
from .buckets import TokenBucket, ceil_ms, go_duration
from .config import SimulatorConfig
from .stats import Stats

__all__ = ["SIMULATOR", "Simulator", "create_app", "start_site"]

_JSON = "application/json"
_DEFAULT_MAX_TOKENS = 16
_STREAM_PIECES = 4


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> web.Response:
    """An OpenAI-style error response."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type=_JSON, headers=headers
    )


def _bad_request(message: str, param: str | None = None) -> web.Response:
    return _error(400, message, "invalid_request_error", None, param=param)


def _per_minute(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _split(text: str, pieces: int) -> list[str]:
    """Split ``text`` into at most ``pieces`` non-empty, near-equal parts."""
    n = max(1, min(pieces, len(text)))
    size = -(-len(text) // n)  # ceil
    return [text[i : i + size] for i in range(0, len(text), size)] or [text]


class Simulator:
    """State shared by the handlers of one server: config, RNG, buckets, stats."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.rng = random.Random(config.seed)
        now = time.monotonic()
        self.requests_bucket = TokenBucket(config.rpm, config.burst, now) if config.rpm else None
        self.tokens_bucket = TokenBucket(config.tpm, config.burst, now) if config.tpm else None
        self._auth = f"Bearer {config.api_key}" if config.api_key else None
        self._models = frozenset(config.models) if config.models is not None else None
        self._mu = math.log(config.latency) if config.latency > 0 else None
        self._ids = itertools.count(1)
        self._workers = asyncio.Semaphore(config.workers) if config.workers else None

    # --- small helpers -------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        return self._auth is None or request.headers.get("Authorization") == self._auth

    def _unauthorized(self) -> web.Response:
        self.stats.unauthorized += 1
        return _error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")

    def _rate_headers(self) -> dict[str, str]:
        """Current x-ratelimit-* headers (omitted for unlimited dimensions)."""
        headers: dict[str, str] = {}
        if not self.config.rate_headers:
            return headers
        for name, bucket in (
            ("requests", self.requests_bucket),
            ("tokens", self.tokens_bucket),
        ):
            if bucket is not None:
                headers[f"x-ratelimit-limit-{name}"] = _per_minute(bucket.per_minute)
                headers[f"x-ratelimit-remaining-{name}"] = str(int(bucket.level))
                headers[f"x-ratelimit-reset-{name}"] = go_duration(bucket.until_full())
        return headers

    def _limit(self, cost: int, model: str) -> tuple[web.Response | None, dict[str, str]]:
        """Check both buckets on arrival; take from both or answer 429."""
        rb, tb = self.requests_bucket, self.tokens_bucket
        if rb is None and tb is None:
            return None, {}
        now = time.monotonic()
        wait_r = wait_t = 0.0
        if rb is not None:
            rb.refill(now)
            wait_r = rb.shortfall(1)
        if tb is not None:
            tb.refill(now)
            wait_t = tb.shortfall(cost)
        if wait_r <= 0 and wait_t <= 0:
            if rb is not None:
                rb.take(1)
            if tb is not None:
                tb.take(cost)
            return None, self._rate_headers()

        kind, bucket, asked = ("requests", rb, 1) if wait_r > 0 else ("tokens", tb, cost)
        assert bucket is not None
        wait = max(wait_r, wait_t)
        self.stats.rate_limited += 1
        self.stats.rate_limited_by[kind] += 1
        headers = self._rate_headers()
        if self.config.rate_headers:
            ms = ceil_ms(wait)
            headers["retry-after-ms"] = str(ms)
            headers["retry-after"] = str(max(1, math.ceil(ms / 1000)))
        unit = "RPM" if kind == "requests" else "TPM"
        used = int(bucket.capacity - bucket.level)
        message = (
            f"Rate limit reached for {model} on {kind} per min ({unit}): "
            f"Limit {_per_minute(bucket.per_minute)}, Used {used}, "
            f"Requested {asked}. Please try again in {go_duration(wait)}."
        )
        return _error(429, message, kind, "rate_limit_exceeded", headers), headers

    def _draw(self) -> tuple[str | None, float]:
        """Seeded fault kind (or None) and latency for one request."""
        cfg, rng = self.config, self.rng
        fault = None
        if cfg.faults and rng.random() < cfg.faults:
            fault = rng.choice(cfg.fault_kinds)
            self.stats.faults[fault] += 1
        delay = rng.lognormvariate(self._mu, cfg.jitter) if self._mu is not None else 0.0
        return fault, delay

    # --- handlers ----------------------------------------------------------------

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions``."""
        st = self.stats
        st.requests += 1
        if not self._authorized(request):
            return self._unauthorized()
        try:
            body = json.loads(await request.read())
        except ValueError:
            st.bad_request += 1
            return _bad_request("We could not parse the JSON body of your request.")
        problem = _validate(body)
        if problem is not None:
            st.bad_request += 1
            return _bad_request(*problem)
        model: str = body["model"]
        if self._models is not None and model not in self._models:
            st.not_found += 1
            return _error(
                404,
                f"The model `{model}` does not exist",
                "invalid_request_error",
                "model_not_found",
            )
        capacity = self.config.capacity
        if capacity and st.in_flight >= capacity:
            st.overloaded += 1
            return _error(503, "The server is overloaded", "server_error", None)

        messages: list[dict[str, Any]] = body["messages"]
        prompt = estimate_tokens("\n".join(message_text(m.get("content")) for m in messages))
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        cost = prompt + (_DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens)
        limited, headers = self._limit(cost, model)
        if limited is not None:
            return limited

        fault, delay = self._draw()
        st.in_flight += 1
        if st.in_flight > st.max_in_flight:
            st.max_in_flight = st.in_flight
        try:
            if self._workers is not None:  # wait for a worker, work even if the client left
                await asyncio.shield(self._turn(self._workers, delay))
                delay = 0.0
            if body.get("stream") is True:
                options = body.get("stream_options")
                usage = isinstance(options, dict) and options.get("include_usage") is True
                return await self._stream(request, body, prompt, headers, fault, delay, usage)
            return await self._reply(request, body, prompt, headers, fault, delay)
        except asyncio.CancelledError:  # the client disconnected while we waited
            st.abandoned += 1
            raise
        finally:
            st.in_flight -= 1

    @staticmethod
    async def _turn(workers: asyncio.Semaphore, delay: float) -> None:
        async with workers:
            await asyncio.sleep(delay)

    def _answer(
        self, body: dict[str, Any], prompt: int, obj: str
    ) -> tuple[dict[str, Any], str, list[str]]:
        """Common completion fields, the content and the texts answered."""
        content, texts = answer_messages(body["messages"], body.get("response_format"))
        completion = estimate_tokens(content)
        base = {
            "id": f"chatcmpl-sim{next(self._ids):08x}",
            "object": obj,
            "created": int(time.time()),
            "model": body["model"],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
        return base, content, texts

    async def _reply(
        self,
        request: web.Request,
        body: dict[str, Any],
        prompt: int,
        headers: dict[str, str],
        fault: str | None,
        delay: float,
    ) -> web.StreamResponse:
        """A non-streaming answer (or its fault)."""
        if fault == "hang":
            delay = self.config.hang  # then answer normally
        if delay:
            await asyncio.sleep(delay)
        if fault == "error":
            return _server_error(headers)
        if fault == "reset":
            return _reset(request)
        base, content, texts = self._answer(body, prompt, "chat.completion")
        usage = base.pop("usage")
        payload = {
            **base,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        data = json.dumps(payload).encode()
        if fault == "malformed":
            data = data[: len(data) // 2]  # truncated, invalid JSON
        elif _client_gone(request):
            self.stats.abandoned += 1
        else:
            self.stats.answered(texts, prompt, usage["completion_tokens"])
        return web.Response(body=data, content_type=_JSON, headers=headers)

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        prompt: int,
        headers: dict[str, str],
        fault: str | None,
        delay: float,
        include_usage: bool,
    ) -> web.StreamResponse:
        """An SSE answer: first token after ``ttft * delay``, rest spread out."""
        ttft = self.config.ttft
        first = self.config.hang if fault == "hang" else delay * ttft
        if first:
            await asyncio.sleep(first)
        if fault == "error":
            return _server_error(headers)
        base, content, texts = self._answer(body, prompt, "chat.completion.chunk")
        usage = base.pop("usage")
        if include_usage:
            base["usage"] = None

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

        resp = web.StreamResponse(headers=headers)
        resp.content_type = "text/event-stream"
        resp.headers["Cache-Control"] = "no-cache"
        pieces = _split(content, _STREAM_PIECES)
        gap = delay * (1.0 - ttft) / len(pieces)
        try:
            await resp.prepare(request)
            await resp.write(event({"role": "assistant", "content": ""}))
            for i, piece in enumerate(pieces):
                await resp.write(event({"content": piece}))
                if i == 0 and fault == "reset":
                    return _reset(request, resp)
                if i == 0 and fault == "malformed":
                    await resp.write(event({"content": piece})[:40] + b"\n\n")
                    await resp.write(b"data: [DONE]\n\n")
                    return resp
                if gap:
                    await asyncio.sleep(gap)
            await resp.write(event({}, "stop"))
            if include_usage:
                tail = {**base, "choices": [], "usage": usage}
                await resp.write(b"data: " + json.dumps(tail).encode() + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:  # client went away mid-stream
            self.stats.abandoned += 1
            return resp
        self.stats.streamed += 1
        self.stats.answered(texts, prompt, usage["completion_tokens"])
        return resp

    async def models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``."""
        if not self._authorized(request):
            return self._unauthorized()
        names = sorted(self._models) if self._models is not None else ["simulator"]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "simulator"} for n in names]
        return web.json_response({"object": "list", "data": data})

    async def get_stats(self, request: web.Request) -> web.Response:
        """``GET /stats``."""
        return web.json_response(self.stats.snapshot())

    async def reset_stats(self, request: web.Request) -> web.Response:
        """``POST /stats/reset``."""
        self.stats.reset()
        return web.json_response({"reset": True})


def _validate(body: Any) -> tuple[str, str | None] | None:
    """(message, param) describing what is wrong with a request body."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object.", None
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "You must provide a model parameter.", "model"
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) for m in messages)
    ):
        return "'messages' must be a non-empty array of objects.", "messages"
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            return f"'{name}' must be a positive integer.", name
    return None


def _server_error(headers: dict[str, str]) -> web.Response:
    return _error(
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
        headers,
    )


def _reset(request: web.Request, resp: web.StreamResponse | None = None) -> web.StreamResponse:
    """Drop the connection; aiohttp then fails quietly writing the response."""
    if request.transport is not None:
        request.transport.close()
    return resp if resp is not None else web.Response()


SIMULATOR = web.AppKey("simulator", Simulator)


def create_app(config: SimulatorConfig | None = None) -> web.Application:
    """Build the aiohttp application for ``config`` (defaults if None)."""
    sim = Simulator(config or SimulatorConfig())
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SIMULATOR] = sim
    app.router.add_post("/v1/chat/completions", sim.completions)
    app.router.add_get("/v1/models", sim.models)
    app.router.add_get("/stats", sim.get_stats)
    app.router.add_post("/stats/reset", sim.reset_stats)
    return app


async def start_site(
    config: SimulatorConfig, shutdown_timeout: float = 0.5
) -> tuple[web.AppRunner, str, int]:
    """Start serving ``config`` on the running loop; return (runner, host, port).

    Handlers are cancelled when their client disconnects, so hung requests
    do not outlive a client timeout.
    """
    host = "127.0.0.1" if config.host == "localhost" else config.host
    runner = web.AppRunner(
        create_app(config),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, config.port, backlog=2048)
    await site.start()
    port = int(runner.addresses[0][1])
    return runner, host, port


def base_url(host: str, port: int) -> str:
    """``http://host:port`` with IPv6 hosts bracketed."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
