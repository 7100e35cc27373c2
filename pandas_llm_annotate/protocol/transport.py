"""Transport: sends one chat completion over a pooled aiohttp session, nothing more.

No retries, limits or caching here. aiohttp's errors become the package's own at
this boundary (see `errors.py`). Every byte read is bounded: an answer by
`max_response_bytes` (counted after decompression, so a gzip bomb stops at the cap),
a stream line by `SSE_LINE_BYTES`, an error body by `ERROR_BODY_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

import aiohttp
import orjson

from ..errors import (
    APIError,
    ConnectError,
    ConnectionLost,
    MalformedResponse,
    ReadTimeout,
    RequestError,
    TransportError,
    error_for_status,
)
from ..redact import redact, redact_url
from .answer import Completion as Completion  # re-exported: the answer type of `complete`
from .answer import EventStream, parse_completion, parse_json

__all__ = ["Completion", "Transport", "encode", "map_error", "mapped_errors", "parse_completion",
           "raise_for_status", "read_bounded"]

_JSON = {"Content-Type": "application/json"}  # the body is sent as encoded bytes
CHUNK_BYTES = 64 * 1024  # read at a time: aiohttp inflates no more than this ahead
ERROR_BODY_BYTES = 64 * 1024  # of an error body: enough for its message
SSE_LINE_BYTES = 1024 * 1024  # one server-sent event line
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # an answer, by default (the `max_response_bytes` setting)


class Transport:
    """One `aiohttp.ClientSession` with a keep-alive pool, used as an async context manager."""

    def __init__(
        self, base_url: str, *, api_key: str | None, timeout: float, max_connections: int,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.root = base_url.rstrip("/")
        self.url = self.root + "/chat/completions"
        self.shown_url = redact_url(self.url)  # for messages: no user name or password
        self._api_key = api_key
        self._headers: dict[str, str] = {}  # a JSON body sets its own content type
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._max_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Transport(url={self.shown_url!r})"

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

    async def complete(self, body: dict[str, Any], *, stream: bool = False,
                       on_headers: Callable[[dict[str, str]], object] | None = None
                       ) -> Completion:
        """POST one request; return its answer or raise a `RequestError`, whose message,
        body and headers show neither the API key (a server may echo it) nor the URL's
        password."""
        try:
            return await self._complete(body, stream, on_headers)
        except RequestError as exc:
            exc.args = tuple(redact(a, self._api_key) if isinstance(a, str) else a
                             for a in exc.args)
            if isinstance(exc, APIError):
                exc.body = redact(exc.body, self._api_key)
                exc.headers = {k: redact(v, self._api_key) for k, v in exc.headers.items()}
            raise

    async def _complete(self, body: dict[str, Any], stream: bool,
                        on_headers: Callable[[dict[str, str]], object] | None
                        ) -> Completion:
        session = self.session
        if stream:
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        start = time.perf_counter()
        try:  # not `mapped_errors`: a context manager per request costs the hot path
            async with session.post(self.url, data=encode(body), headers=_JSON,
                                    allow_redirects=False) as resp:
                if resp.status >= 300:
                    await raise_for_status(resp, self.shown_url)
                headers = dict(resp.headers)
                if on_headers is not None:  # before the answer: streamed, at its first token
                    on_headers(headers)
                if stream and resp.content_type != "application/json":  # else: not streamed
                    answer = EventStream(start)
                    async with contextlib.aclosing(_lines(resp, self._max_bytes)) as lines:
                        async for line in lines:
                            if answer.feed(line):
                                break
                    return answer.completion(headers)
                raw, more = await _read_capped(resp, self._max_bytes)
                if more:
                    raise _too_big(self._max_bytes)
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise map_error(exc, self.shown_url, self._timeout.total, start) from exc
        return parse_json(raw, time.perf_counter() - start, headers)


def encode(body: dict[str, Any]) -> bytes:
    """A request body as JSON: orjson (under a tenth of the time of `json.dumps` for a
    body with a long system prompt and schema; numpy numbers written as numbers), else
    `json.dumps` for what orjson refuses (a lone surrogate in a text, an integer over 64
    bits), so such a row is sent as before rather than ending the run."""
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:
        return json.dumps(body).encode()


@contextlib.contextmanager
def mapped_errors(url: str, timeout: float | None, start: float) -> Iterator[None]:
    """aiohttp's errors, raised inside, become the package's own (`errors.py`); `url` is
    the one messages show (no credentials)."""
    try:
        yield
    except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
        raise map_error(exc, url, timeout, start) from exc


def map_error(exc: asyncio.TimeoutError | aiohttp.ClientError, url: str,
              timeout: float | None, start: float) -> TransportError:
    """The package's error for an aiohttp error (or a timeout) of a request to `url`."""
    if isinstance(exc, asyncio.TimeoutError):
        return ReadTimeout(
            f"No answer from {url} within {timeout} s. A slow or busy server: raise "
            "timeout= or lower max_concurrency=.",
            elapsed=time.perf_counter() - start,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(
            f"Cannot reach {url} ({exc.os_error or exc}). Is the server running and "
            "base_url right?"
        )
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                        aiohttp.ClientOSError)):
        return ConnectionLost(f"Connection to {url} dropped: {exc!r}")
    return TransportError(f"Request to {url} failed: {exc!r}")


async def raise_for_status(resp: aiohttp.ClientResponse, url: str) -> None:
    """A redirect or an error status becomes its `APIError` (the body read up to
    `ERROR_BODY_BYTES`)."""
    if resp.status >= 300:
        raw, _ = await _read_capped(resp, ERROR_BODY_BYTES)
        text = raw.decode("utf-8", errors="replace")
        raise error_for_status(resp.status, text, dict(resp.headers), url)


async def read_bounded(resp: aiohttp.ClientResponse, limit: int, *, cut: bool = False) -> bytes:
    """The body, at most `limit` bytes: a longer one is cut there (`cut`) or refused."""
    raw, more = await _read_capped(resp, limit)
    if more and not cut:
        raise MalformedResponse(f"The answer from {redact_url(str(resp.url))} is longer than "
                                f"{limit:,} bytes: refused.")
    return raw


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """The body's first `cap` bytes (decompressed), and whether more followed. A body
    read only in part closes its connection (never returned to the pool)."""
    parts: list[bytes] = []
    size = 0
    while size <= cap:
        block = await resp.content.read(min(CHUNK_BYTES, cap + 1 - size))
        if not block:
            return b"".join(parts), False
        parts.append(block)
        size += len(block)
        if size <= cap and resp.content.at_eof():  # all of it: no read to see the end
            return b"".join(parts), False
    resp.close()
    return b"".join(parts)[:cap], True


async def _lines(resp: aiohttp.ClientResponse, cap: int) -> AsyncGenerator[bytes, None]:
    """The body's lines, at most `cap` bytes in all and `SSE_LINE_BYTES` each."""
    pending = b""
    total = 0
    while block := await resp.content.read(CHUNK_BYTES):
        total += len(block)
        if total > cap:
            resp.close()
            raise _too_big(cap)
        *lines, pending = (pending + block).split(b"\n")
        for line in lines:
            yield line
        if len(pending) > SSE_LINE_BYTES:
            resp.close()
            raise MalformedResponse(
                f"A stream line is over {SSE_LINE_BYTES:,} bytes: not an OpenAI event stream. "
                "Check that base_url points at an OpenAI-compatible API, or set stream=False."
            )
    if pending:
        yield pending


def _too_big(cap: int) -> MalformedResponse:
    return MalformedResponse(
        f"The answer is over max_response_bytes={cap} bytes (after decompression). "
        "Raise max_response_bytes= if answers are really that long; else the server is "
        "misbehaving (check base_url)."
    )
