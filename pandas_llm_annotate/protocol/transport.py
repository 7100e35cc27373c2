"""Transport: sends one chat completion over a pooled aiohttp session, nothing more.

No retries, limits or caching here. aiohttp's errors become the package's own at
this boundary (see `errors.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..errors import (
    ConnectError,
    ConnectionLost,
    MalformedResponse,
    ReadTimeout,
    TransportError,
    error_for_status,
)


@dataclass(frozen=True)
class Completion:
    """One successful answer."""

    content: str
    latency: float
    ttft: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


class Transport:
    """One `aiohttp.ClientSession` with a keep-alive pool, used as an async context manager."""

    def __init__(
        self, base_url: str, *, api_key: str | None, timeout: float, max_connections: int
    ) -> None:
        self.root = base_url.rstrip("/")
        self.url = self.root + "/chat/completions"
        self._headers: dict[str, str] = {}  # a JSON body sets its own content type
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Transport(url={self.url!r})"

    async def __aenter__(self) -> Transport:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, keepalive_timeout=30
        )
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, timeout=self._timeout
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled session (with the key), for other endpoints (`batch_api.py`)."""
        if self._session is None:
            raise RuntimeError("Transport used outside `async with`.")
        return self._session

    async def complete(self, body: dict[str, Any], *, stream: bool = False) -> Completion:
        """POST one request; return its answer or raise a `RequestError`."""
        session = self.session
        if stream:
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        start = time.perf_counter()
        with mapped_errors(self.url, self._timeout.total, start):
            async with session.post(self.url, json=body) as resp:
                await raise_for_status(resp, self.url)
                headers = dict(resp.headers)
                if stream:
                    return await _read_sse(resp, start, headers)
                raw = await resp.read()
        latency = time.perf_counter() - start
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise MalformedResponse(f"Unexpected answer body: {raw[:200]!r}") from exc
        return parse_completion(data, latency, headers)


ERROR_BODY_BYTES = 64 * 1024  # of an error answer, at most this much is read


@contextlib.contextmanager
def mapped_errors(url: str, timeout: float | None, start: float) -> Iterator[None]:
    """aiohttp's errors, raised inside, become the package's own (`errors.py`)."""
    try:
        yield
    except asyncio.TimeoutError as exc:
        raise ReadTimeout(
            f"No answer from {url} within {timeout} s. A slow or busy "
            "server: raise timeout= or lower max_concurrency=.",
            elapsed=time.perf_counter() - start,
        ) from exc
    except aiohttp.ClientConnectorError as exc:
        raise ConnectError(
            f"Cannot reach {url} ({exc.os_error or exc}). Is the server running and "
            "base_url right?"
        ) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
            aiohttp.ClientOSError) as exc:
        raise ConnectionLost(f"Connection to {url} dropped: {exc!r}") from exc
    except aiohttp.ClientError as exc:
        raise TransportError(f"Request to {url} failed: {exc!r}") from exc


async def raise_for_status(resp: aiohttp.ClientResponse, url: str) -> None:
    """An error status becomes its `APIError` (the body read up to `ERROR_BODY_BYTES`)."""
    if resp.status >= 400:
        text = (await read_bounded(resp, ERROR_BODY_BYTES, cut=True)).decode(errors="replace")
        raise error_for_status(resp.status, text, dict(resp.headers), url)


async def read_bounded(resp: aiohttp.ClientResponse, limit: int, *, cut: bool = False) -> bytes:
    """The body, at most `limit` bytes: a longer one is cut there (`cut`) or refused."""
    parts: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            if cut:
                break
            raise MalformedResponse(
                f"The answer from {resp.url} is longer than {limit:,} bytes: refused.")
    return b"".join(parts)[:limit]


def parse_completion(data: Any, latency: float, headers: Mapping[str, str]) -> Completion:
    """A chat completion's JSON body as a `Completion` (`MalformedResponse` when not one)."""
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise MalformedResponse(f"Unexpected answer body: {str(data)[:200]!r}") from exc
    if not isinstance(content, str):
        raise MalformedResponse(f"The answer has no text content: {str(data)[:200]!r}")
    usage = data.get("usage") or {}
    tokens = [usage.get(k) if isinstance(usage, dict) else None
              for k in ("prompt_tokens", "completion_tokens")]
    return Completion(
        content=content,
        latency=latency,
        prompt_tokens=tokens[0] if isinstance(tokens[0], int) else None,
        completion_tokens=tokens[1] if isinstance(tokens[1], int) else None,
        headers=headers,
    )


async def _read_sse(
    resp: aiohttp.ClientResponse, start: float, headers: Mapping[str, str]
) -> Completion:
    """Read an OpenAI server-sent-event stream up to `data: [DONE]`."""
    parts: list[str] = []
    ttft: float | None = None
    usage: dict[str, Any] = {}
    done = finished = False
    async for line in resp.content:
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            done = True
            break
        try:
            chunk = json.loads(payload)
            choices = chunk.get("choices") or []
            usage = chunk.get("usage") or usage
        except (ValueError, AttributeError) as exc:
            raise MalformedResponse(f"Bad stream event: {payload[:200]!r}") from exc
        for choice in choices:
            delta = (choice.get("delta") or {}).get("content")
            if delta:
                if ttft is None:
                    ttft = time.perf_counter() - start
                parts.append(delta)
            finished = finished or bool(choice.get("finish_reason"))
    if not (done or finished):
        raise ConnectionLost("The stream ended before the answer was complete.")
    return Completion(
        content="".join(parts),
        latency=time.perf_counter() - start,
        ttft=ttft,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        headers=headers,
    )
