"""The Files and Batches endpoints, as OpenAI's API reference describes them.

``POST /v1/files`` (multipart: ``purpose``, ``file``), ``GET /v1/files/{id}`` and
``/v1/files/{id}/content``; ``POST /v1/batches`` (``input_file_id``, ``endpoint``,
``completion_window``), ``GET /v1/batches`` (``limit``, ``after``), ``GET
/v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``. A batch goes ``validating →
in_progress → finalizing → completed``, or ``failed`` (its input file does not
validate), ``expired`` (``batch_window`` passed first) or ``cancelling → cancelled``.
Answers go to an output file, failed requests to an error file, one JSON line each
(``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``;
requests that never ran carry ``error.code`` ``batch_expired`` or ``batch_cancelled``),
in no particular order. Timing is in ``config.py``; everything is kept in memory.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .config import SimulatorConfig
from .stats import Stats
from .wire import bad_request, batch_lines, error

ENDPOINT = "/v1/chat/completions"
MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 200_000_000
SLICES = 20  # a batch answers its requests in this many steps
Answer = Callable[[dict[str, Any]], "tuple[int, dict[str, Any], list[str], int, int]"]


@dataclass
class _Batch:
    data: dict[str, Any]  # the batch object served
    lines: list[dict[str, Any]] = field(default_factory=list)
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    cancel: bool = False


class Batches:
    """Files and batches of one server. ``answer(body)`` gives (status, body, texts,
    prompt tokens, completion tokens) for one request, as the chat endpoint would."""

    def __init__(self, config: SimulatorConfig, stats: Stats, answer: Answer,
                 authorized: Callable[[web.Request], web.Response | None]) -> None:
        self.config = config
        self.stats = stats
        self.answer = answer
        self.authorized = authorized
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.batches: dict[str, _Batch] = {}
        self.rng = random.Random(config.seed + 1)
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08x}{self.rng.getrandbits(32):08x}"

    def _file(self, data: bytes, purpose: str, name: str) -> str:
        file_id = self._id("file-")
        self.files[file_id] = ({"id": file_id, "object": "file", "bytes": len(data),
                                "created_at": int(time.time()), "filename": name,
                                "purpose": purpose, "status": "processed",
                                "expires_at": None, "status_details": None}, data)
        return file_id

    # --- files ---------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.Response:
        if (refused := self.authorized(request)) is not None:
            return refused
        try:
            form = await request.post()
        except ValueError:
            return bad_request("Expected a multipart/form-data body with 'file' and 'purpose'.")
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose not in ("batch", "fine-tune", "assistants", "vision", "user_data", "evals"):
            return bad_request(f"Invalid purpose {purpose!r}.", param="purpose")
        if not isinstance(upload, web.FileField):
            return bad_request("Missing the 'file' part.", param="file")
        data = upload.file.read()
        if purpose == "batch" and len(data) > MAX_FILE_BYTES:
            return bad_request("A batch input file can be at most 200 MB.", param="file")
        self.stats.files += 1
        return web.json_response(self.files[self._file(data, str(purpose), upload.filename)][0])

    def _known(self, request: web.Request) -> tuple[dict[str, Any], bytes] | web.Response:
        found = self.files.get(request.match_info["file_id"])
        if found is None:
            return error(404, "No such File object: " + request.match_info["file_id"],
                         "invalid_request_error", None, param="id")
        return found

    async def file(self, request: web.Request) -> web.Response:
        if (refused := self.authorized(request)) is not None:
            return refused
        found = self._known(request)
        return found if isinstance(found, web.Response) else web.json_response(found[0])

    async def content(self, request: web.Request) -> web.Response:
        if (refused := self.authorized(request)) is not None:
            return refused
        found = self._known(request)
        if isinstance(found, web.Response):
            return found
        return web.Response(body=found[1], content_type="application/octet-stream")

    # --- batches -------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        if (refused := self.authorized(request)) is not None:
            return refused
        try:
            body = json.loads(await request.read())
        except ValueError:
            return bad_request("We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return bad_request("The request body must be a JSON object.")
        if body.get("endpoint") != ENDPOINT:
            return bad_request(f"endpoint must be {ENDPOINT!r} here.", param="endpoint")
        if body.get("completion_window") != "24h":
            return bad_request("completion_window must be '24h'.", param="completion_window")
        found = self.files.get(str(body.get("input_file_id")))
        if found is None or found[0]["purpose"] != "batch":
            return bad_request("input_file_id must name a file uploaded with purpose 'batch'.",
                               param="input_file_id")
        now = int(time.time())
        batch_id = self._id("batch_")
        data: dict[str, Any] = {
            "id": batch_id, "object": "batch", "endpoint": ENDPOINT, "errors": None,
            "input_file_id": found[0]["id"], "completion_window": "24h",
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": now, "in_progress_at": None,
            "expires_at": now + int(self.config.batch_window), "finalizing_at": None,
            "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else None,
        }
        batch = self.batches[batch_id] = _Batch(data)
        self.stats.batches += 1
        task = asyncio.ensure_future(self._run(batch, found[1], time.monotonic()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(data)

    def _batch(self, request: web.Request) -> _Batch | web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return error(404, "No batch found with id " + request.match_info["batch_id"],
                         "invalid_request_error", None, param="batch_id")
        return batch

    async def retrieve(self, request: web.Request) -> web.Response:
        if (refused := self.authorized(request)) is not None:
            return refused
        batch = self._batch(request)
        return batch if isinstance(batch, web.Response) else web.json_response(batch.data)

    async def list_batches(self, request: web.Request) -> web.Response:
        if (refused := self.authorized(request)) is not None:
            return refused
        try:
            limit = max(1, min(100, int(request.query.get("limit", "20"))))
        except ValueError:
            return bad_request("limit must be a whole number.", param="limit")
        ids = list(reversed(self.batches))  # newest first
        after = request.query.get("after")
        if after in self.batches:
            ids = ids[ids.index(after) + 1:]
        page = [self.batches[i].data for i in ids[:limit]]
        return web.json_response({
            "object": "list", "data": page, "has_more": len(ids) > limit,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None})

    async def cancel(self, request: web.Request) -> web.Response:
        if (refused := self.authorized(request)) is not None:
            return refused
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        if batch.data["status"] not in ("validating", "in_progress", "finalizing"):
            return bad_request(f"Cannot cancel a batch with status {batch.data['status']!r}.")
        batch.cancel = True
        batch.data.update(status="cancelling", cancelling_at=int(time.time()))
        return web.json_response(batch.data)

    # --- the life of a batch ---------------------------------------------------------

    async def _run(self, batch: _Batch, raw: bytes, start: float) -> None:
        delay, deadline = self.config.batch_delay, start + self.config.batch_window
        if await self._wait(batch, delay * 0.1, deadline):
            return
        batch.lines, problems = batch_lines(raw, ENDPOINT, MAX_REQUESTS)
        if problems:
            batch.data.update(status="failed", failed_at=int(time.time()),
                              errors={"object": "list", "data": problems[:100]})
            return
        batch.data.update(status="in_progress", in_progress_at=int(time.time()))
        batch.data["request_counts"]["total"] = len(batch.lines)
        size = -(-len(batch.lines) // SLICES) or 1
        for i in range(0, len(batch.lines), size):
            if await self._wait(batch, delay * 0.8 / SLICES, deadline):
                return
            for line in batch.lines[i : i + size]:
                self._answer(batch, line)
        batch.data.update(status="finalizing", finalizing_at=int(time.time()))
        if await self._wait(batch, delay * 0.1, deadline):
            return
        self._close(batch, "completed", None)

    async def _wait(self, batch: _Batch, seconds: float, deadline: float) -> bool:
        """Sleep; True when the batch ended meanwhile (cancelled or expired)."""
        await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic())))
        if batch.cancel:
            await asyncio.sleep(self.config.batch_delay * 0.1)
            self._close(batch, "cancelled", "batch_cancelled")
            return True
        if time.monotonic() >= deadline:
            self._close(batch, "expired", "batch_expired")
            return True
        return False

    def _answer(self, batch: _Batch, line: dict[str, Any]) -> None:
        counts = batch.data["request_counts"]
        if self.config.batch_faults and self.rng.random() < self.config.batch_faults:
            status: int = 500
            body: dict[str, Any] = {"error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error", "param": None, "code": None}}
            texts: list[str] = []
            prompt = completion = 0
        else:
            status, body, texts, prompt, completion = self.answer(line["body"])
        response = {"status_code": status, "request_id": self._id("req_"), "body": body}
        record = json.dumps({"id": self._id("batch_req_"), "custom_id": line["custom_id"],
                             "response": response, "error": None})
        if status == 200:
            batch.out.append(record)
            counts["completed"] += 1
            self.stats.answered(texts, prompt, completion, batch=True)
        else:
            batch.err.append(record)
            counts["failed"] += 1
            self.stats.batch_failed += 1
        line["done"] = True

    def _close(self, batch: _Batch, status: str, code: str | None) -> None:
        """End the batch: lines that never ran go to the error file with `code`."""
        for line in batch.lines:
            if not line.get("done") and code is not None:
                why = ("The batch expired before this request ran." if code == "batch_expired"
                       else "The batch was cancelled before this request ran.")
                batch.err.append(json.dumps({
                    "id": self._id("batch_req_"), "custom_id": line["custom_id"],
                    "response": None, "error": {"code": code, "message": why}}))
                batch.data["request_counts"]["failed"] += 1
        for records, key, purpose in ((batch.out, "output_file_id", "batch_output"),
                                      (batch.err, "error_file_id", "batch_output")):
            if records:
                self.rng.shuffle(records)  # OpenAI promises no order
                data = ("\n".join(records) + "\n").encode()
                batch.data[key] = self._file(data, purpose, f"{batch.data['id']}_{key}.jsonl")
        batch.data.update(status=status, **{f"{status}_at": int(time.time())})

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

