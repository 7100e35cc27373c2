"""The simulator's Files and Batches endpoints, in OpenAI's shapes: the life cycle of a
batch (validating → in_progress → finalizing → completed; failed; expired; cancelling →
cancelled), the output and error files line by line, request counts, paging."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from pandas_llm_annotate.errors import AuthenticationError, BadRequestError
from pandas_llm_annotate.protocol.batch_api import BatchAPI, BatchInfo, input_line
from pandas_llm_annotate.protocol.transport import Transport
from pandas_llm_annotate.simulator import SimulatorHandle, serve

KEY = "sk-batch"


def requests(n: int, prefix: str = "r") -> bytes:
    return b"".join(input_line(f"{prefix}{i}", {
        "model": "sim", "max_tokens": 16,
        "messages": [{"role": "user", "content": f"text {i} about my card"}]})
        for i in range(n))


@asynccontextmanager
async def client(sim: SimulatorHandle, key: str | None = KEY) -> AsyncIterator[BatchAPI]:
    async with Transport(sim.base_url, api_key=key, timeout=10, max_connections=4) as t:
        yield BatchAPI(t, timeout=10)


async def follow(api: BatchAPI, batch: BatchInfo,
                 act: Callable[[BatchInfo], Any] | None = None) -> tuple[BatchInfo, list[str]]:
    """Poll until the batch ends; the statuses seen, in order, without repeats."""
    seen = [batch.status]
    while not batch.done:
        await asyncio.sleep(0.02)
        batch = await api.retrieve(batch.id)
        if batch.status != seen[-1]:
            seen.append(batch.status)
        if act is not None:
            await act(batch)
    return batch, seen


def raw_lines(sim: SimulatorHandle, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    req = urllib.request.Request(f"{sim.base_url}/files/{file_id}/content",
                                 headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line]


def check_shape(lines: Sequence[dict[str, Any]]) -> None:
    for line in lines:
        assert set(line) == {"id", "custom_id", "response", "error"}
        if line["response"] is not None:
            assert set(line["response"]) == {"status_code", "request_id", "body"}
        else:
            assert set(line["error"]) == {"code", "message"}


def test_a_batch_completes_with_its_answers_in_the_output_file() -> None:
    async def main(sim: SimulatorHandle) -> None:
        async with client(sim) as api:
            batch = await api.create(await api.upload(requests(40), "in.jsonl"), {"k": "v"})
            assert batch.status == "validating"
            batch, seen = await follow(api, batch)
            assert seen == ["validating", "in_progress", "finalizing", "completed"]
            assert (batch.total, batch.completed, batch.failed) == (40, 40, 0)
            assert batch.error_file_id is None
            lines = raw_lines(sim, batch.output_file_id)
            check_shape(lines)
            assert sorted(line["custom_id"] for line in lines) == sorted(
                f"r{i}" for i in range(40))
            body = lines[0]["response"]["body"]
            assert lines[0]["response"]["status_code"] == 200
            assert body["object"] == "chat.completion" and body["usage"]["prompt_tokens"] > 0
            assert isinstance(body["choices"][0]["message"]["content"], str)
            found = [line async for line in api.lines(batch.output_file_id or "", 40)]
            assert len(found) == 40 and {line.status for line in found} == {200}

    with serve(batch_delay=0.3, api_key=KEY) as sim:
        asyncio.run(main(sim))
        stats = sim.stats()
        assert (stats["files"], stats["batches"], stats["batch_requests"]) == (1, 1, 40)
        assert stats["requests"] == 0 and len(stats["texts"]) == 40


def test_per_request_failures_go_to_the_error_file_seeded() -> None:
    async def main(sim: SimulatorHandle) -> tuple[int, list[str]]:
        async with client(sim) as api:
            batch = await api.create(await api.upload(requests(200), "in.jsonl"), {})
            batch, _ = await follow(api, batch)
            errors = raw_lines(sim, batch.error_file_id)
            check_shape(errors)
            assert {e["response"]["status_code"] for e in errors} == {500}
            assert batch.completed + batch.failed == batch.total == 200
            assert batch.failed == len(errors)
            return batch.failed, sorted(e["custom_id"] for e in errors)

    runs = []
    for _ in range(2):
        with serve(batch_delay=0.1, batch_faults=0.1, seed=3, api_key=KEY) as sim:
            runs.append(asyncio.run(main(sim)))
    assert 5 < runs[0][0] < 40
    assert runs[0] == runs[1]  # same seed, same failures


def test_an_invalid_input_file_fails_the_batch_with_line_numbers() -> None:
    bad = requests(2) + requests(1) + b'{"custom_id": "x", "method": "GET", "url": "/v1/x"}\n'

    async def main(sim: SimulatorHandle) -> None:
        async with client(sim) as api:
            batch, seen = await follow(api, await api.create(await api.upload(bad, "b"), {}))
            assert seen == ["validating", "failed"]
            assert batch.output_file_id is None and batch.error_file_id is None
            assert any("line 3" in e and "not unique" in e for e in batch.errors)
            assert any("line 4" in e for e in batch.errors)

    with serve(batch_delay=0.1, api_key=KEY) as sim:
        asyncio.run(main(sim))


def test_a_batch_expires_when_its_window_passes_first() -> None:
    async def main(sim: SimulatorHandle) -> None:
        async with client(sim) as api:
            batch = await api.create(await api.upload(requests(100), "in.jsonl"), {})
            batch, seen = await follow(api, batch)
            assert seen == ["validating", "in_progress", "expired"]
            assert 0 < batch.completed < 100 and batch.completed + batch.failed == 100
            errors = raw_lines(sim, batch.error_file_id)
            check_shape(errors)
            assert {e["error"]["code"] for e in errors} == {"batch_expired"}
            assert len(raw_lines(sim, batch.output_file_id)) == batch.completed

    with serve(batch_delay=2.0, batch_window=0.6, api_key=KEY) as sim:
        asyncio.run(main(sim))


def test_cancel_goes_through_cancelling_and_keeps_what_was_answered() -> None:
    async def main(sim: SimulatorHandle) -> None:
        async with client(sim) as api:
            batch = await api.create(await api.upload(requests(100), "in.jsonl"), {})

            async def cancel_once(now: BatchInfo) -> None:
                if now.status == "in_progress" and now.completed > 0:
                    assert (await api.cancel(now.id)).status == "cancelling"

            batch, seen = await follow(api, batch, cancel_once)
            assert seen[-2:] == ["cancelling", "cancelled"]
            assert 0 < batch.completed < 100
            codes = {e["error"]["code"] for e in raw_lines(sim, batch.error_file_id)}
            assert codes == {"batch_cancelled"}
            with pytest.raises(BadRequestError, match="Cannot cancel"):
                await api.cancel(batch.id)

    with serve(batch_delay=1.5, api_key=KEY) as sim:
        asyncio.run(main(sim))


def test_list_pages_newest_first_and_find_by_input_file() -> None:
    async def main(sim: SimulatorHandle) -> None:
        async with client(sim) as api:
            files = [await api.upload(requests(1, f"f{i}-"), f"{i}") for i in range(5)]
            made = [await api.create(f, {}) for f in files]
            found = await api.find(files[0], pages=3)
            assert found is not None and found.id == made[0].id
            first = await api._json("GET", "/batches", params={"limit": "2"})
            assert [b["id"] for b in first["data"]] == [made[4].id, made[3].id]
            assert first["has_more"] and first["last_id"] == made[3].id
            assert await api.find("file-unknown") is None
        async with client(sim, key="wrong") as api:
            with pytest.raises(AuthenticationError):
                await api.retrieve(made[0].id)

    with serve(batch_delay=0.1, api_key=KEY) as sim:
        asyncio.run(main(sim))
