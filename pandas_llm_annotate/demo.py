"""`python -m pandas_llm_annotate.demo`: label a shipped sample against the embedded
simulator (no key, no network), twice, and print what dedupe and the cache saved."""

from __future__ import annotations

import argparse
import tempfile
from importlib import resources

import pandas as pd

import pandas_llm_annotate as pla
from pandas_llm_annotate.simulator import serve


def load_sample() -> pd.DataFrame:
    """1,000 synthetic customer messages (600 distinct) with their intent."""
    with resources.files("pandas_llm_annotate").joinpath("data/sample.csv").open() as f:
        return pd.read_csv(f)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.3, help="median server latency, s")
    parser.add_argument("--rpm", type=float, default=6000, help="simulated requests per minute")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)

    df = load_sample()
    labels = sorted(df["intent"].unique())
    print(f"sample: {len(df)} rows, {df['text'].nunique()} distinct texts, "
          f"{len(labels)} intents")
    with serve(latency=args.latency, rpm=args.rpm) as sim, tempfile.TemporaryDirectory() as tmp:
        pla.configure(model="simulator", base_url=sim.base_url, cache=tmp,
                      max_concurrency=args.concurrency)
        for attempt in ("first run", "rerun (cache)"):
            df["predicted"] = df.llm.annotate("text", "Which intent is this?", labels=labels)
            rep = pla.last_report()
            assert rep is not None
            print(f"\n{attempt}: {rep}")
            print(f"  requests sent {rep.requests} for {rep.rows} rows; "
                  f"calls saved by dedupe + cache: {rep.calls_saved}")
        packed = df.llm.annotate("text", "Which intent is this?", labels=labels,
                                 rows_per_request="auto", cache=False)
        rep = pla.last_report()
        assert rep is not None
        print(f"\npacked (rows_per_request='auto', no cache): {rep}")
        print(f"  {rep.rows_per_request:.0f} texts per request, {rep.reasked} asked again, "
              f"answers equal to one-per-request: {packed.equals(df['predicted'])}")
        topics = df["text"].head(8).to_frame()
        topics["topic"] = topics.llm.annotate("text")
        print("\ndefault task (no prompt): a short topic per text\n")
        print(topics.to_string())
        print(f"\nserver saw: {sim.stats()['requests']} HTTP requests in all")
        pla.configure(model=None, base_url=None, cache=None, max_concurrency=None)
    agree = (df["predicted"] == df["intent"]).mean()
    print(f"\nagreement of the simulator's labels with the sample's intents: {agree:.0%} "
          "(the simulator guesses by word overlap; a real model does better)")


if __name__ == "__main__":
    main()
