"""Memory of a big column: builds the texts in this process (``spec.generate``), then
labels them with this package; reports peak and current RSS after imports, after building
the DataFrame and after labelling."""

from __future__ import annotations

import gc

from benchmarks.protocol import (
    current_rss_mb,
    emit,
    generated_texts,
    load_spec,
    maxrss_mb,
    peak_rss_mb,
    stopwatch,
)


def snapshot() -> dict[str, float | None]:
    gc.collect()
    return {"peak_mb": peak_rss_mb(), "now_mb": current_rss_mb(), "ru_maxrss_mb": maxrss_mb()}


def main() -> None:
    spec = load_spec()
    opts = spec.get("options", {})

    import pandas as pd

    import pandas_llm_annotate as pla

    rss = {"imports": snapshot()}
    gen = spec["generate"]
    df = pd.DataFrame({"text": generated_texts(gen["distinct"], gen["rows"])})
    rss["dataframe"] = snapshot()
    with stopwatch() as t:
        out = df.llm.annotate(
            "text", spec["prompt"], labels=spec["labels"], model=spec["model"],
            base_url=spec["base_url"], api_key="sk-simulator", cache=opts["cache_dir"],
            progress=False, **opts.get("settings", {}),
        )
    rss["labelled"] = snapshot()
    report = pla.last_report()
    assert report is not None
    lost = int((~out.isin(set(spec["labels"]))).sum())
    info = {k: v for k, v in report.to_dict().items() if k != "failures"}
    emit({"wall_s": t[0], "retries": report.retries, "rows_lost": lost,
          "info": {"rss": rss, "report": info}})


if __name__ == "__main__":
    main()
