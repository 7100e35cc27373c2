"""The Batch API client against a hostile server: every read is bounded, a body that is
not what the reference says is refused, garbage lines are skipped."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from pandas_llm_annotate.errors import MalformedResponse
from pandas_llm_annotate.protocol import batch_api
from pandas_llm_annotate.protocol.batch_api import BatchAPI, BatchInfo, parse_line
from pandas_llm_annotate.protocol.transport import Transport

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def against(routes: dict[str, Handler], check: Callable[[BatchAPI], Awaitable[Any]]) -> Any:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with Transport(f"http://127.0.0.1:{port}/v1", api_key=None, timeout=10,
                             max_connections=2) as transport:
            return await check(BatchAPI(transport, timeout=10))
    finally:
        await runner.cleanup()


def line(custom_id: str) -> bytes:
    return json.dumps({"id": "x", "custom_id": custom_id, "error": None, "response": {
        "status_code": 200, "request_id": "r", "body": {}}}).encode() + b"\n"


async def read_all(api: BatchAPI, lines: int) -> list[str]:
    return [found.custom_id async for found in api.lines("file-1", lines)]


def test_a_file_with_more_lines_than_requests_is_refused() -> None:
    async def content(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(10_000):  # endless, as far as the client is concerned
            await resp.write(line(f"c{i}"))
        return resp

    routes = {"/v1/files/{id}/content": content}
    assert asyncio.run(against(routes, lambda api: read_all(api, 10_000)))[-1] == "c9999"
    with pytest.raises(MalformedResponse, match="more lines than its batch had requests"):
        asyncio.run(against(routes, lambda api: read_all(api, 3)))


def test_a_line_over_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_api, "LINE_BYTES", 100_000)

    async def content(request: web.Request) -> web.Response:
        return web.Response(body=line("ok") + b"x" * 300_000 + b"\n" + line("late"))

    with pytest.raises(MalformedResponse, match="over 100,000 bytes"):
        asyncio.run(against({"/v1/files/{id}/content": content},
                            lambda api: read_all(api, 5)))


def test_garbage_lines_are_skipped_and_the_last_line_needs_no_newline() -> None:
    async def content(request: web.Request) -> web.Response:
        return web.Response(body=b"not json\n[1]\n" + line("a") + b"\n\n" + line("b")[:-1])

    found = asyncio.run(against({"/v1/files/{id}/content": content},
                                lambda api: read_all(api, 5)))
    assert found == ["a", "b"]
    assert parse_line(b'{"custom_id": "c", "response": null, "error": {"code": "batch_expired",'
                      b' "message": "late"}}') == batch_api.OutputLine(
        "c", None, None, code="batch_expired", message="late")


def test_a_batch_object_is_checked_and_its_size_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_api, "JSON_BYTES", 10_000)

    async def odd(request: web.Request) -> web.Response:
        return web.json_response({"id": "b", "status": "done?", "input_file_id": "f"})

    async def huge(request: web.Request) -> web.Response:
        return web.json_response({"id": "b", "status": "completed", "input_file_id": "f",
                                  "pad": "x" * 50_000})

    routes = {"/v1/batches/odd": odd, "/v1/batches/huge": huge}
    with pytest.raises(MalformedResponse, match="Not a batch object"):
        asyncio.run(against(routes, lambda api: api.retrieve("odd")))
    with pytest.raises(MalformedResponse, match="longer than 10,000 bytes"):
        asyncio.run(against(routes, lambda api: api.retrieve("huge")))
    info = BatchInfo.parse({"id": "b", "status": "failed", "input_file_id": "f",
                            "request_counts": {"total": -3, "completed": "2"},
                            "errors": {"data": [{"line": 4, "message": "bad"}, "junk"]}})
    assert (info.total, info.completed, info.errors) == (0, 0, ("line 4: bad",))
