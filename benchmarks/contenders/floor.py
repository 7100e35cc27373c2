"""The bare minimum, to measure what the simulator and loopback can carry: one pooled
aiohttp session, ``options.concurrency`` workers, one request per distinct text, JSON
parsed, nothing else (no retry, cache, label check). Its wall time is the bound.

It sends the package's own request body, answer format (`response_format`) included, so
the server does the same work for both; ``options.plain`` leaves the format out (the
floor of earlier runs, kept as a reference row)."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from benchmarks.protocol import Spec, emit, load_spec, load_texts, stopwatch


async def label_all(spec: Spec, texts: list[str], concurrency: int, *,
                    plain: bool = False) -> dict[str, str | None]:
    todo = list(dict.fromkeys(texts))
    answers: dict[str, str | None] = dict.fromkeys(todo)
    url = spec["base_url"] + "/chat/completions"
    queue: asyncio.Queue[str] = asyncio.Queue()
    for text in todo:
        queue.put_nowait(text)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    headers = {"Authorization": "Bearer sk-simulator"}
    fmt = None if plain else spec.get("response_format")
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def work() -> None:
            while not queue.empty():
                text = queue.get_nowait()
                body = {
                    "model": spec["model"], "temperature": 0, "max_tokens": spec["max_tokens"],
                    "messages": [{"role": "system", "content": spec["system"]},
                                 {"role": "user", "content": text}],
                }
                if fmt is not None:
                    body["response_format"] = fmt
                async with session.post(url, json=body) as resp:
                    raw = await resp.read()
                if resp.status == 200:
                    content = json.loads(raw)["choices"][0]["message"]["content"]
                    answers[text] = content if fmt is None else _label(content)

        await asyncio.gather(*(work() for _ in range(concurrency)))
    return answers


def _label(content: str) -> str | None:
    """The label of a structured answer (`{"label": ...}`), None if it is not one."""
    try:
        value = json.loads(content)
    except ValueError:
        return None
    label = value.get("label") if isinstance(value, dict) else None
    return label if isinstance(label, str) else None


def main() -> None:
    spec = load_spec()
    texts = load_texts(spec)
    options = spec.get("options", {})
    concurrency = int(options.get("concurrency", 64))
    with stopwatch() as t:
        by_text = asyncio.run(label_all(spec, texts, concurrency,
                                        plain=bool(options.get("plain"))))
    emit({"wall_s": t[0], "answers": [by_text[x] for x in texts], "retries": 0, "info": {}})


if __name__ == "__main__":
    main()
