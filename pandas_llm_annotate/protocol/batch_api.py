"""The OpenAI Batch API, as much as a run needs: a JSONL file of requests uploaded to
`/v1/files` (purpose "batch"), a batch over it (`/v1/batches`, endpoint
`/v1/chat/completions`, completion window "24h"), its status and request counts, its
output and error files (`/v1/files/{id}/content`), and cancelling it.

Shapes as in OpenAI's API reference: an input line is `{"custom_id", "method": "POST",
"url": "/v1/chat/completions", "body"}`; a line of the output or error file is
`{"id", "custom_id", "response": {"status_code", "request_id", "body"} | null,
"error": {"code", "message"} | null}`. The calls use the run's `Transport` session (its
key and error mapping). Every read is bounded: a JSON object to `JSON_BYTES`, a file
line to `LINE_BYTES`, a file to the lines its batch can hold.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..errors import MalformedResponse, NotFoundError
from .transport import Transport, mapped_errors, raise_for_status, read_bounded

ENDPOINT = "/v1/chat/completions"
WINDOW = "24h"
MAX_REQUESTS = 50_000  # requests in one batch (OpenAI's limit)
MAX_FILE_BYTES = 200_000_000  # bytes of one input file (OpenAI: 200 MB)
JSON_BYTES = 4 << 20  # a batch or file object, or a page of 100 of them
LINE_BYTES = 4 << 20  # one line of an output or error file
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
STATUSES = TERMINAL | {"validating", "in_progress", "finalizing", "cancelling"}
NO_BATCH_API = ("Does this server offer the Batch API (/v1/files, /v1/batches)? If not, run "
                "without batch=True.")


@dataclass(frozen=True)
class BatchInfo:
    """A batch as the server describes it (`GET /v1/batches/{id}`)."""

    id: str
    status: str
    input_file_id: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: tuple[str, ...] = ()  # why a batch failed (its input did not validate)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def parse(cls, data: Any) -> BatchInfo:
        """Check a batch object's fields (`MalformedResponse` when they are not right)."""
        if not isinstance(data, dict) or data.get("status") not in STATUSES or not all(
                isinstance(data.get(k), str) and data[k] for k in ("id", "input_file_id")):
            raise MalformedResponse(f"Not a batch object: {str(data)[:200]!r}")
        counts = _dict(data.get("request_counts"))
        number = {k: v if isinstance(v, int) and v >= 0 else 0
                  for k in ("total", "completed", "failed") for v in [counts.get(k)]}
        found = _dict(data.get("errors"))
        errors = tuple(
            f"line {e.get('line')}: {e.get('message')}" if e.get("line") is not None
            else str(e.get("message"))
            for e in (found.get("data") or []) if isinstance(e, dict))[:20]
        return cls(
            id=data["id"], status=data["status"], input_file_id=data["input_file_id"],
            output_file_id=_str_or_none(data.get("output_file_id")),
            error_file_id=_str_or_none(data.get("error_file_id")),
            errors=errors, **number,
        )


@dataclass(frozen=True)
class OutputLine:
    """One line of an output or error file: the request's HTTP status and body, or
    (`status` None) the code and message of why it never ran."""

    custom_id: str
    status: int | None
    body: Any
    code: str | None = None
    message: str = ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def input_line(custom_id: str, body: Mapping[str, Any]) -> bytes:
    """One request of an input file, newline included."""
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def parse_line(raw: bytes) -> OutputLine | None:
    """A line of an output or error file, or None when it is not one."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
        return None
    response, error = data.get("response"), data.get("error")
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        message = error.get("message", "") if isinstance(error, dict) else ""
        return OutputLine(data["custom_id"], response["status_code"], response.get("body"),
                          message=str(message))
    if isinstance(error, dict):
        return OutputLine(data["custom_id"], None, None, code=_str_or_none(error.get("code")),
                          message=str(error.get("message") or ""))
    return None


class BatchAPI:
    """The Files and Batches endpoints over `transport`'s session."""

    def __init__(self, transport: Transport, *, timeout: float) -> None:
        self.transport = transport
        self.root = transport.root
        # Files may be large: no bound on the whole transfer, only on each wait for bytes.
        self._file_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout,
                                                   sock_read=timeout)
        self._timeout = timeout

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.root + path
        start = time.perf_counter()
        try:
            with mapped_errors(url, self._timeout, start):
                async with self.transport.session.request(method, url, **kwargs) as resp:
                    await raise_for_status(resp, url)
                    raw = await read_bounded(resp, JSON_BYTES)
        except NotFoundError as exc:  # the model hint of a chat 404 does not fit here
            raise NotFoundError(f"HTTP 404 from {url}. {NO_BATCH_API}", status=404,
                                body=exc.body, headers=exc.headers) from None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise MalformedResponse(f"Unexpected answer from {url}: {raw[:200]!r}") from exc

    async def upload(self, data: bytes, name: str) -> str:
        """Upload an input file (purpose "batch"); its file id."""
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", data, filename=name, content_type="application/jsonl")
        found = await self._json("POST", "/files", data=form, timeout=self._file_timeout)
        if not isinstance(found, dict) or not isinstance(found.get("id"), str):
            raise MalformedResponse(f"Not a file object: {str(found)[:200]!r}")
        return str(found["id"])

    async def create(self, file_id: str, metadata: Mapping[str, str]) -> BatchInfo:
        body = {"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": WINDOW,
                "metadata": dict(metadata)}
        return BatchInfo.parse(await self._json("POST", "/batches", json=body))

    async def retrieve(self, batch_id: str) -> BatchInfo:
        return BatchInfo.parse(await self._json("GET", f"/batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> BatchInfo:
        return BatchInfo.parse(await self._json("POST", f"/batches/{batch_id}/cancel"))

    async def find(self, file_id: str, *, pages: int = 10) -> BatchInfo | None:
        """The batch over input file `file_id` among the newest `pages` × 100, if any
        (a run killed between creating a batch and saving its id finds it so)."""
        after: str | None = None
        for _ in range(pages):
            query = {"limit": "100", **({"after": after} if after else {})}
            page = await self._json("GET", "/batches", params=query)
            items = page.get("data") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise MalformedResponse(f"Not a list of batches: {str(page)[:200]!r}")
            for item in items:
                if isinstance(item, dict) and item.get("input_file_id") == file_id:
                    return BatchInfo.parse(item)
            if not page.get("has_more") or not items or not isinstance(items[-1], dict):
                return None
            after = str(items[-1].get("id"))
        return None

    async def lines(self, file_id: str, max_lines: int) -> AsyncIterator[OutputLine]:
        """The lines of an output or error file, read as they arrive; a file with a line
        over `LINE_BYTES` or more than `max_lines` lines is refused."""
        url = f"{self.root}/files/{file_id}/content"
        start = time.perf_counter()
        with mapped_errors(url, self._timeout, start):
            async with self.transport.session.get(url, timeout=self._file_timeout) as resp:
                await raise_for_status(resp, url)
                pending, count = bytearray(), 0
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    *done, rest = chunk.split(b"\n")
                    if done:
                        done[0] = bytes(pending) + done[0]
                        pending = bytearray(rest)
                    else:
                        pending += rest
                    if len(pending) > LINE_BYTES:
                        raise MalformedResponse(f"A line of {url} is over {LINE_BYTES:,} bytes.")
                    for raw in done:
                        if raw.strip():
                            count += 1
                            if count > max_lines:
                                raise MalformedResponse(
                                    f"{url} has more lines than its batch had requests "
                                    f"({max_lines:,}).")
                            if (line := parse_line(raw)) is not None:
                                yield line
                if pending.strip() and count < max_lines and (
                        line := parse_line(bytes(pending))) is not None:
                    yield line
