"""This package: ``df.llm.annotate`` with the spec's settings (``options.settings``)."""

from __future__ import annotations

from typing import Any

from benchmarks.protocol import emit, load_spec, load_texts, stopwatch


def main() -> None:
    spec = load_spec()
    texts = load_texts(spec)
    opts = spec.get("options", {})

    import pandas as pd

    import pandas_llm_annotate as pla

    if opts.get("no_guard"):  # the control run: the limiter without its timeout guard
        from benchmarks.ablation import timeout_guard_off

        timeout_guard_off()
    if opts.get("preload_embedder"):  # the model loads before the timed call
        from pandas_llm_annotate.semantic.embedder import resolve

        resolve(None).load()

    df = pd.DataFrame({"text": texts})
    settings: dict[str, Any] = {
        "model": spec["model"], "base_url": spec["base_url"], "api_key": "sk-simulator",
        "cache": opts["cache_dir"], "progress": False, **opts.get("settings", {}),
    }
    with stopwatch() as t:
        out = df.llm.annotate("text", spec["prompt"], labels=spec["labels"], **settings)
    report = pla.last_report()
    assert report is not None
    info = report.to_dict()
    failures = info.pop("failures")
    info["failures_first"] = failures[:3]
    answers = [a if isinstance(a, str) else None for a in out.tolist()]
    emit({"wall_s": t[0], "answers": answers, "retries": report.retries, "info": info})


if __name__ == "__main__":
    main()
