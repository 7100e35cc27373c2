"""The usual async recipe: ``openai.AsyncOpenAI`` (library default retries) with an
``asyncio.Semaphore(64)`` over every row, no dedupe; a row whose request the library
gives up on is lost. Retries are counted from the library's ``x-stainless-retry-count``.
Options: ``concurrency`` (the semaphore, 64) and ``timeout`` (the client's, seconds)."""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.protocol import Spec, emit, load_spec, load_texts, stopwatch

CONCURRENCY = 64


async def label_all(spec: Spec, texts: list[str], counts: dict[str, Any]) -> list[str | None]:
    import openai

    async def on_request(request: Any) -> None:
        counts["attempts"] += 1
        if int(request.headers.get("x-stainless-retry-count", "0") or 0) > 0:
            counts["retries"] += 1

    http = openai.DefaultAsyncHttpxClient(event_hooks={"request": [on_request]})
    opts = spec.get("options", {})
    extra = {"timeout": opts["timeout"]} if "timeout" in opts else {}
    client = openai.AsyncOpenAI(base_url=spec["base_url"], api_key="sk-simulator",
                                http_client=http, **extra)
    counts["max_retries"] = client.max_retries
    sem = asyncio.Semaphore(opts.get("concurrency", CONCURRENCY))

    async def ask(text: str) -> str | None:
        async with sem:
            try:
                resp = await client.chat.completions.create(
                    model=spec["model"], temperature=0, max_tokens=spec["max_tokens"],
                    messages=[{"role": "system", "content": spec["system"]},
                              {"role": "user", "content": text}],
                )
            except openai.OpenAIError as exc:
                name = type(exc).__name__
                counts["errors"][name] = counts["errors"].get(name, 0) + 1
                return None
            return resp.choices[0].message.content

    try:
        return list(await asyncio.gather(*(ask(t) for t in texts)))
    finally:
        await client.close()


def main() -> None:
    spec = load_spec()
    texts = load_texts(spec)
    counts: dict[str, Any] = {"attempts": 0, "retries": 0, "errors": {}}
    with stopwatch() as t:
        answers = asyncio.run(label_all(spec, texts, counts))
    emit({"wall_s": t[0], "answers": answers, "retries": counts["retries"], "info": counts})


if __name__ == "__main__":
    main()
