"""The aiohttp application: the order of the checks, the handlers, the app.

Order of checks for ``POST /v1/chat/completions``: auth (401), body (400),
model (404), capacity (503), rate limits (429, checked on arrival, ``limits.py``),
then a seeded fault roll and a seeded log-normal latency (``faults.py``) before the
answer (``replies.py``). The requests of a batch (``batches.py``) pass the same body
and model checks, but no limits, faults or latency: the batch has its own timing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from .answers import message_text
from .batches import Batches
from .config import SimulatorConfig
from .faults import Dice
from .limits import RateLimits
from .replies import Replies
from .stats import Stats
from .tokens import prompt_tokens
from .wire import bad_request, error, validate

__all__ = ["SIMULATOR", "Simulator", "create_app", "start_site"]

_DEFAULT_MAX_TOKENS = 16


class Simulator:
    """State shared by the handlers of one server: config, stats, limits, dice."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.limits = RateLimits(config, self.stats)
        self.dice = Dice(config, self.stats)
        self.replies = Replies(config, self.stats)
        self._auth = f"Bearer {config.api_key}" if config.api_key else None
        self._models = frozenset(config.models) if config.models is not None else None
        self._workers = asyncio.Semaphore(config.workers) if config.workers else None
        self.batches = Batches(config, self.stats, self.batch_answer, self._refused)

    def _authorized(self, request: web.Request) -> bool:
        return self._auth is None or request.headers.get("Authorization") == self._auth

    def _refused(self, request: web.Request) -> web.Response | None:
        return None if self._authorized(request) else self._unauthorized()

    def _model_unknown(self, model: str) -> web.Response | None:
        if self._models is None or model in self._models:
            return None
        self.stats.not_found += 1
        return error(404, f"The model `{model}` does not exist", "invalid_request_error",
                     "model_not_found")

    def batch_answer(self, body: Any) -> tuple[int, dict[str, Any], list[str], int, int]:
        """One request of a batch: (status, body, texts answered, prompt, completion)."""
        problem = validate(body)
        if problem is None and (unknown := self._model_unknown(body["model"])) is not None:
            return 404, json.loads(unknown.body), [], 0, 0  # type: ignore[arg-type]
        if problem is not None:
            message, param = problem
            return 400, {"error": {"message": message, "type": "invalid_request_error",
                                   "param": param, "code": None}}, [], 0, 0
        prompt = prompt_tokens(message_text(m.get("content")) for m in body["messages"])
        payload, texts = self.replies.completion(body, prompt)
        return 200, payload, texts, prompt, payload["usage"]["completion_tokens"]

    def _unauthorized(self) -> web.Response:
        self.stats.unauthorized += 1
        return error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")

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
            return bad_request("We could not parse the JSON body of your request.")
        problem = validate(body)
        if problem is not None:
            st.bad_request += 1
            return bad_request(*problem)
        model: str = body["model"]
        if (unknown := self._model_unknown(model)) is not None:
            return unknown
        capacity = self.config.capacity
        if capacity and st.in_flight >= capacity:
            st.overloaded += 1
            return error(503, "The server is overloaded", "server_error", None)

        messages: list[dict[str, Any]] = body["messages"]
        prompt = prompt_tokens(message_text(m.get("content")) for m in messages)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        cost = prompt + (_DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens)
        limited, headers = self.limits.check(cost, model)
        if limited is not None:
            return limited

        fault, delay = self.dice.draw()
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
                return await self.replies.stream(request, body, prompt, headers, fault, delay,
                                                 usage)
            return await self.replies.reply(request, body, prompt, headers, fault, delay)
        except asyncio.CancelledError:  # the client disconnected while we waited
            st.abandoned += 1
            raise
        finally:
            st.in_flight -= 1

    @staticmethod
    async def _turn(workers: asyncio.Semaphore, delay: float) -> None:
        async with workers:
            await asyncio.sleep(delay)

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


SIMULATOR = web.AppKey("simulator", Simulator)


def create_app(config: SimulatorConfig | None = None) -> web.Application:
    """Build the aiohttp application for ``config`` (defaults if None)."""
    sim = Simulator(config or SimulatorConfig())
    app = web.Application(client_max_size=210 * 1024 * 1024)  # a 200 MB batch file fits
    app[SIMULATOR] = sim
    app.router.add_post("/v1/chat/completions", sim.completions)
    app.router.add_get("/v1/models", sim.models)
    batches = sim.batches
    app.router.add_post("/v1/files", batches.upload)
    app.router.add_get("/v1/files/{file_id}", batches.file)
    app.router.add_get("/v1/files/{file_id}/content", batches.content)
    app.router.add_post("/v1/batches", batches.create)
    app.router.add_get("/v1/batches", batches.list_batches)
    app.router.add_get("/v1/batches/{batch_id}", batches.retrieve)
    app.router.add_post("/v1/batches/{batch_id}/cancel", batches.cancel)

    async def stop_batches(app: web.Application) -> None:
        await sim.batches.close()

    app.on_cleanup.append(stop_batches)
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
