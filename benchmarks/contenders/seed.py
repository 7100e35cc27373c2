"""The original recipe: aiohttp, rows in batches of 8 gathered with asyncio.gather, a new
ClientSession per request, no retry or rate-limit handling (a 429 loses the row)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from benchmarks.protocol import Spec, emit, load_spec, load_texts, stopwatch

BATCH = 8


async def ask(spec: Spec, text: str) -> str:
    body = {
        "model": spec["model"], "temperature": 0, "max_tokens": spec["max_tokens"],
        "messages": [{"role": "system", "content": spec["system"]},
                     {"role": "user", "content": text}],
    }
    headers = {"Authorization": "Bearer sk-simulator"}
    async with aiohttp.ClientSession() as session, session.post(
        spec["base_url"] + "/chat/completions", json=body, headers=headers
    ) as resp:
        data: dict[str, Any] = await resp.json()
    content: str = data["choices"][0]["message"]["content"]
    return content


async def label_all(spec: Spec, texts: list[str]) -> list[str | None]:
    answers: list[str | None] = []
    for i in range(0, len(texts), BATCH):
        batch = texts[i : i + BATCH]
        got = await asyncio.gather(*(ask(spec, t) for t in batch), return_exceptions=True)
        answers += [a if isinstance(a, str) else None for a in got]
    return answers


def main() -> None:
    spec = load_spec()
    texts = load_texts(spec)
    with stopwatch() as t:
        answers = asyncio.run(label_all(spec, texts))
    errors = sum(a is None for a in answers)
    emit({"wall_s": t[0], "answers": answers, "retries": 0, "info": {"errors": errors}})


if __name__ == "__main__":
    main()
