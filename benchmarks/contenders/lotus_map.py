"""LOTUS (``lotus-ai``): ``df.sem_map`` with its LM (LiteLLM ``openai/<model>``) pointed at
the simulator. Runs in its own venv (see ``benchmarks/lotus_env.py``). Options:
``rate_limit`` (requests per minute, LOTUS's own throttle) and ``max_batch_size``."""

from __future__ import annotations

import traceback
from typing import Any

from benchmarks.protocol import emit, load_spec, load_texts, stopwatch


def main() -> None:
    spec = load_spec()
    texts = load_texts(spec)
    opts = spec.get("options", {})

    import lotus
    import pandas as pd
    from lotus.models import LM

    lm_kwargs: dict[str, Any] = {
        "model": "openai/" + spec["model"], "api_base": spec["base_url"],
        "api_key": "sk-simulator", "temperature": 0.0, "max_tokens": spec["max_tokens"],
    }
    for name in ("rate_limit", "max_batch_size"):
        if opts.get(name) is not None:
            lm_kwargs[name] = opts[name]
    lotus.settings.configure(lm=LM(**lm_kwargs))
    df = pd.DataFrame({"text": texts})
    info: dict[str, Any] = {"lm": {k: v for k, v in lm_kwargs.items() if k != "api_key"}}
    answers: list[str | None] = [None] * len(texts)
    with stopwatch() as t:
        try:
            sem_map: Any = df.sem_map  # LOTUS's DataFrame accessor
            out = sem_map("Which banking intent is this customer message? {text}",
                          system_prompt=spec["system"])
            answers = [a if isinstance(a, str) else None for a in out["_map"].tolist()]
        except Exception as exc:  # LOTUS raises the first failed request: every row is lost
            info["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            info["traceback_tail"] = traceback.format_exc().splitlines()[-3:]
    emit({"wall_s": t[0], "answers": answers, "retries": None, "info": info})


if __name__ == "__main__":
    main()
