"""The naive loop: one blocking urllib request per row, no dedupe, no retry."""

from __future__ import annotations

import json
import urllib.request

from benchmarks.protocol import emit, load_spec, load_texts, stopwatch


def main() -> None:
    spec = load_spec()
    texts = load_texts(spec)
    url = spec["base_url"] + "/chat/completions"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-simulator"}
    answers: list[str | None] = []
    errors = 0
    with stopwatch() as t:
        for text in texts:
            body = {
                "model": spec["model"], "temperature": 0, "max_tokens": spec["max_tokens"],
                "messages": [{"role": "system", "content": spec["system"]},
                             {"role": "user", "content": text}],
            }
            req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
            try:
                with opener.open(req, timeout=60) as resp:
                    answers.append(json.load(resp)["choices"][0]["message"]["content"])
            except Exception:  # a 429 or any failure loses the row
                errors += 1
                answers.append(None)
    emit({"wall_s": t[0], "answers": answers, "retries": 0, "info": {"errors": errors}})


if __name__ == "__main__":
    main()
