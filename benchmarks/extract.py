"""`extract`, few-shot examples and label definitions against a real server and model:
llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct (Q4_1), this CPU.

    python3 dev.py real-llm                 # once: builds llama.cpp, fetches the model
    .venv/bin/python benchmarks/extract.py [--rows 200] [--zh-rows 200]

- Validity: the share of rows whose every field is valid, on `--rows` banking77 test rows
  with a 4-field schema (the intent, one of the 77, among them), the answer constrained by
  its JSON schema (`structured=True`) vs the instructions alone (`structured=False`).
- Quality: agreement with the gold intent on the same rows with `annotate(labels=77)`:
  zero-shot, with `examples=` (one per intent, the first of each in banking77 *train*,
  none of them a test row) and with label definitions (`labels={intent: description}`,
  written for this benchmark); ChnSentiCorp sentiment (binary) zero-shot vs 4 examples.
- Cost: prompt tokens per row (the server's `usage`) for `extract` with one row per
  request vs `rows_per_request="auto"`, and the same for the few-shot run.

Each run starts without a cache. A 135M model is a poor labeller: the numbers say what it
does with each option, whatever they show. Prints a markdown table; writes
`benchmarks/results/extract.md` and `.json`. Skips (exit 2, with a message) without the
server, the model or `../shared/data`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"

if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from benchmarks.intents import DEFINITIONS  # noqa: E402
from benchmarks.results import publish  # noqa: E402
from pandas_llm_annotate import llamacpp  # noqa: E402

NEEDED = ("banking77_test.csv", "banking77_train.csv", "banking77_categories.json",
          "chnsenticorp_htl_all.csv")
SENTIMENT = {1: "positive", 0: "negative"}


def schema(labels: list[str]) -> dict[str, Any]:
    """The 4-field schema: the intent among them."""
    from typing import Annotated

    return {
        "intent": labels,
        "card_related": Annotated[bool, "true when the message is about a bank card"],
        "amount": Annotated[float | None, "an amount of money in the message, else null"],
        "product": Annotated[str | None, "the product or service asked about, a few words"],
    }


def load(rows: int, zh_rows: int) -> dict[str, Any]:
    test = pd.read_csv(DATA / "banking77_test.csv").dropna()
    train = pd.read_csv(DATA / "banking77_train.csv").dropna()
    labels = [str(x) for x in json.loads((DATA / "banking77_categories.json").read_text())]
    sample = test.sample(n=rows, random_state=1).reset_index(drop=True)
    firsts = train.groupby("category", sort=False).head(1)
    examples = [(t, c) for t, c in zip(firsts["text"], firsts["category"], strict=True)]
    assert not set(firsts["text"]) & set(sample["text"]), "an example is a test row"
    zh = pd.read_csv(DATA / "chnsenticorp_htl_all.csv", encoding="utf-8-sig").dropna()
    zh = zh[zh["review"].str.strip().str.len() > 0]
    zh_sample = zh.sample(n=zh_rows, random_state=1)
    rest = zh.drop(zh_sample.index)
    short = rest[rest["review"].str.len().between(10, 40)]  # not sampled rows, short
    pos, neg = (short[short["label"] == v]["review"].tolist()[:2] for v in (1, 0))
    zh_examples = [(pos[0], "positive"), (neg[0], "negative"), (pos[1], "positive"),
                   (neg[1], "negative")]
    return {"sample": sample, "labels": labels, "examples": examples,
            "zh": zh_sample.reset_index(drop=True), "zh_examples": zh_examples}


def measure(out: pd.Series | pd.DataFrame, wall: float) -> dict[str, Any]:
    rep = out.attrs["llm_report"]
    asked = rep.distinct
    return {"rows": rep.rows, "requests": rep.requests, "reasked": rep.reasked,
            "failed": rep.failed, "fields_failed": rep.fields_failed,
            "answer_format": rep.answer_format, "wall_s": round(wall, 1),
            "prompt_tokens_per_row": round(rep.prompt_tokens / asked, 1),
            "completion_tokens_per_row": round(rep.completion_tokens / asked, 1),
            "rows_per_request": rep.rows_per_request,
            "failure_examples": [[str(v) for v in row] for row in rep.failures.drop(
                columns=["index", "text"]).head(4).values.tolist()]}


def run_extract(d: dict[str, Any], where: dict[str, Any], **options: Any) -> dict[str, Any]:
    frame, labels = d["sample"], d["labels"]
    started = time.perf_counter()
    out = frame.llm.extract("text", schema(labels), "Read the banking customer's message.",
                            **where, **options)
    r = measure(out, time.perf_counter() - started)
    bad_rows = out.attrs["llm_report"].failures["index"].nunique()
    r["all_fields_valid"] = round(1 - bad_rows / len(frame), 4)
    r["intent_valid"] = round(float(out["intent"].notna().mean()), 4)
    r["intent_agreement"] = round(float((out["intent"].astype(object) == frame["category"])
                                        .mean()), 4)
    return r


def run_labels(frame: pd.DataFrame, text: str, gold: pd.Series, labels: Any,
               where: dict[str, Any], **options: Any) -> dict[str, Any]:
    started = time.perf_counter()
    out = frame.llm.annotate(text, labels=labels, **where, **options)
    r = measure(out, time.perf_counter() - started)
    r["valid"] = round(float(out.notna().mean()), 4)
    r["agreement"] = round(float((out == gold).mean()), 4)
    return r


def table(res: dict[str, Any]) -> str:
    def pct(x: float) -> str:
        return f"{x:.1%}"

    ex = res["extract"]
    lines = [
        f"## extract, examples, label definitions: llama-cpp-python {res['llama_cpp']}, "
        f"{res['model']}, {res['rows']} banking77 test rows, {res['zh_rows']} ChnSentiCorp rows",
        "", "Validity and cost of `extract` (4 fields: intent among 77 labels, card_related "
        "bool, amount float|None, product str|None):", "",
        "| run | form | every field valid | intent valid | intent = gold | requests | "
        "prompt tokens/row | completion tokens/row | wall s |",
        "|---|---|---|---|---|---|---|---|---|"]
    for name, r in ex.items():
        lines.append(f"| {name} | {r['answer_format'] or '-'} | {pct(r['all_fields_valid'])} | "
                     f"{pct(r['intent_valid'])} | {pct(r['intent_agreement'])} | "
                     f"{r['requests']} | {r['prompt_tokens_per_row']} | "
                     f"{r['completion_tokens_per_row']} | {r['wall_s']} |")
    lines += ["", "Quality with `annotate` (agreement with the gold label; valid = an answer "
              "that is one of the labels):", "",
              "| data | run | agreement | valid | requests | prompt tokens/row | wall s |",
              "|---|---|---|---|---|---|---|"]
    for data_name, runs in (("banking77, 77 intents", res["intents"]),
                            ("ChnSentiCorp, 2 labels", res["sentiment"])):
        for name, r in runs.items():
            lines.append(f"| {data_name} | {name} | {pct(r['agreement'])} | {pct(r['valid'])} | "
                         f"{r['requests']} | {r['prompt_tokens_per_row']} | {r['wall_s']} |")
    lines += ["", f"- machine: {os.cpu_count()} cores, 1-min load {res['load'][0]:.1f} at the "
              f"start and {res['load'][1]:.1f} at the end; the server answers one request at "
              "a time; `max_concurrency=2`; no cache (every run asks every row).",
              "- prompt tokens/row = the server's `usage.prompt_tokens` summed over the run's "
              "requests (asked-again rows included) / distinct texts.",
              f"- chance agreement: {1 / 77:.1%} (intents), 50% (sentiment)."]
    for name, r in [*ex.items(), *res["intents"].items()]:
        if r["failure_examples"]:
            lines.append(f"- {name}, first failures: "
                         + "; ".join(repr(" / ".join(x)[:90]) for x in r["failure_examples"][:2]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--zh-rows", type=int, default=200)
    args = parser.parse_args(argv)
    reason = llamacpp.unavailable()
    if reason is None and (missing := [n for n in NEEDED if not (DATA / n).is_file()]):
        reason = f"no {', '.join(str(DATA / n) for n in missing)}"
    if reason is not None:
        print(f"skipped: {reason}", file=sys.stderr)
        return 2
    import llama_cpp

    d = load(args.rows, args.zh_rows)
    labels, frame = d["labels"], d["sample"]
    res: dict[str, Any] = {"rows": args.rows, "zh_rows": args.zh_rows,
                           "llama_cpp": llama_cpp.__version__, "model": llamacpp.MODEL_FILE,
                           "extract": {}, "intents": {}, "sentiment": {}}
    load_start = os.getloadavg()[0]
    with llamacpp.serve_llamacpp() as server:
        where = {"model": server.model, "base_url": server.base_url, "cache": False,
                 "progress": False, "max_concurrency": 2, "timeout": 300}
        runs = [
            ("extract", "constrained, 1 row/request", lambda: run_extract(d, where)),
            ("extract", "structured=False, 1 row/request",
             lambda: run_extract(d, where, structured=False)),
            ("extract", 'constrained, rows_per_request="auto"',
             lambda: run_extract(d, where, rows_per_request="auto")),
            ("intents", "zero-shot", lambda: run_labels(frame, "text", frame["category"],
                                                        labels, where)),
            ("intents", f"{len(d['examples'])} examples (1 per intent)",
             lambda: run_labels(frame, "text", frame["category"], labels, where,
                                examples=d["examples"])),
            ("intents", 'the same examples, rows_per_request="auto"',
             lambda: run_labels(frame, "text", frame["category"], labels, where,
                                examples=d["examples"], rows_per_request="auto")),
            ("intents", "label definitions",
             lambda: run_labels(frame, "text", frame["category"],
                                {k: DEFINITIONS[k] for k in labels}, where)),
            ("sentiment", "zero-shot",
             lambda: run_labels(d["zh"], "review", d["zh"]["label"].map(SENTIMENT),
                                list(SENTIMENT.values()), where)),
            ("sentiment", "4 examples",
             lambda: run_labels(d["zh"], "review", d["zh"]["label"].map(SENTIMENT),
                                list(SENTIMENT.values()), where, examples=d["zh_examples"])),
        ]
        for group, name, run in runs:
            r = run()
            res[group][name] = r
            shown = {k: v for k, v in r.items() if k != "failure_examples"}
            print(f"{group}: {name}: {shown}", flush=True)
    res["load"] = (load_start, os.getloadavg()[0])
    publish("extract", table(res), res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
