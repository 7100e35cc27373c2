"""Memory of a big column: builds the texts in this process (``spec.generate``), then
labels them with this package; reports RSS after imports, after building the DataFrame
and the peak (``ru_maxrss``) after labelling."""

from __future__ import annotations

import gc

from benchmarks.protocol import (
    current_rss_mb,
    emit,
    generated_texts,
    load_spec,
    peak_rss_mb,
    stopwatch,
)


def main() -> None:
    spec = load_spec()
    opts = spec.get("options", {})

    import pandas as pd

    import pandas_llm_annotate as pla

    gc.collect()
    rss = {"imports_mb": peak_rss_mb(), "imports_now_mb": current_rss_mb()}
    gen = spec["generate"]
    df = pd.DataFrame({"text": generated_texts(gen["distinct"], gen["rows"])})
    gc.collect()
    rss["dataframe_mb"] = peak_rss_mb()
    rss["dataframe_now_mb"] = current_rss_mb()
    with stopwatch() as t:
        out = df.llm.annotate(
            "text", spec["prompt"], labels=spec["labels"], model=spec["model"],
            base_url=spec["base_url"], api_key="sk-simulator", cache=opts["cache_dir"],
            progress=False, **opts.get("settings", {}),
        )
    rss["peak_mb"] = peak_rss_mb()
    rss["after_now_mb"] = current_rss_mb()
    report = pla.last_report()
    assert report is not None
    labels = set(spec["labels"])
    lost = int((~out.isin(labels)).sum())
    info = {k: v for k, v in report.to_dict().items() if k != "failures"}
    emit({"wall_s": t[0], "retries": report.retries,
          "info": {"rss": rss, "rows_lost": lost, "report": info}})


if __name__ == "__main__":
    main()
