"""A server on 127.0.0.1 that accepts requests and never answers: the run stops at once
with a clear error, as for an unreachable server; and timeouts before the first answer
do not make the retries go one at a time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiohttp import web
from helpers.local_server import LocalServer, user_text

import pandas_llm_annotate as pla

TEXTS = [f"text {i}" for i in range(10)]


class Silent(LocalServer):
    """Holds every request open until the server closes, except those `answers` lets
    through (given the text and how often it was asked before)."""

    def __init__(self, answers: Any = lambda text, seen: False) -> None:
        super().__init__(lambda body: "ok")
        self.answers = answers
        self.seen: dict[str, int] = {}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        text = user_text(await request.json())
        seen = self.seen.get(text, 0)
        self.seen[text] = seen + 1
        if not self.answers(text, seen):
            assert self._stop is not None
            await self._stop.wait()
        return await super()._handle(request)


def run(base_url: str, cache: Path) -> pd.Series:
    df = pd.DataFrame({"text": TEXTS})

    async def bounded() -> pd.Series:  # a stall fails the test instead of hanging it
        return await asyncio.wait_for(df.llm.aannotate(
            "text", model="m", base_url=base_url, cache=str(cache), timeout=1,
            max_retries=1, progress=False), 30)

    return asyncio.run(bounded())


def test_a_server_that_never_answers_stops_the_run_with_a_clear_error(tmp_path: Path) -> None:
    """Before: 10 rows with timeout=1, max_retries=1 had not ended after 10 minutes."""
    with Silent() as server:
        start = time.monotonic()
        with pytest.raises(pla.ReadTimeout) as info:
            run(server.base_url, tmp_path / "c")
        took = time.monotonic() - start
    message = str(info.value)
    assert took < 4, took
    assert "never answers" in message and "base_url" in message and "timeout=" in message
    assert server.base_url in message
    report = pla.last_report()
    assert report is not None and report.status == "failed"


def test_timeouts_before_the_first_answer_do_not_serialise_the_retries(tmp_path: Path) -> None:
    """One text is answered, the first try of every other one hangs: their retries go
    out together (before, one at a time behind the ghosts of the hung requests)."""
    with Silent(lambda text, seen: text == TEXTS[0] or seen > 0) as server:
        start = time.monotonic()
        out = run(server.base_url, tmp_path / "c")
        took = time.monotonic() - start
    assert out.tolist() == ["ok"] * len(TEXTS)
    assert took < 4, took
    assert server.seen == {t: 1 if t == TEXTS[0] else 2 for t in TEXTS}
