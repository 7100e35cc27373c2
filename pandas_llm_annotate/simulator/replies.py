"""The answers of a chat completion, plain JSON or SSE, with the faults drawn for
them struck at their points: a hang before the answer, a 500, a dropped connection
(before the answer, or after the first streamed piece), a truncated body."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from aiohttp import web

from .answers import answer_messages
from .config import SimulatorConfig
from .faults import reset, server_error
from .stats import Stats
from .tokens import count_tokens
from .wire import JSON

_STREAM_PIECES = 4


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _split(text: str, pieces: int) -> list[str]:
    """Split ``text`` into at most ``pieces`` non-empty, near-equal parts."""
    n = max(1, min(pieces, len(text)))
    size = -(-len(text) // n)  # ceil
    return [text[i : i + size] for i in range(0, len(text), size)] or [text]


class Replies:
    """Writes the answers of one server (their ids count up)."""

    def __init__(self, config: SimulatorConfig, stats: Stats) -> None:
        self.config = config
        self.stats = stats
        self._ids = itertools.count(1)

    def _answer(
        self, body: dict[str, Any], prompt: int, obj: str
    ) -> tuple[dict[str, Any], str, list[str]]:
        """Common completion fields, the content and the texts answered."""
        content, texts = answer_messages(body["messages"], body.get("response_format"),
                                         bad_fields=self.config.bad_fields,
                                         seed=self.config.seed)
        completion = count_tokens(content)
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

    async def reply(
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
            return server_error(headers)
        if fault == "reset":
            return reset(request)
        payload, texts = self.completion(body, prompt)
        data = json.dumps(payload).encode()
        if fault == "malformed":
            data = data[: len(data) // 2]  # truncated, invalid JSON
        elif _client_gone(request):
            self.stats.abandoned += 1
        else:
            self.stats.answered(texts, prompt, payload["usage"]["completion_tokens"])
        return web.Response(body=data, content_type=JSON, headers=headers)

    def completion(self, body: dict[str, Any], prompt: int) -> tuple[dict[str, Any], list[str]]:
        """A ``chat.completion`` object answering ``body``, and the texts it answers."""
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
        return payload, texts

    async def stream(
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
            return server_error(headers)
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
                    return reset(request, resp)
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
