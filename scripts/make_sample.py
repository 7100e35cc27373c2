"""Regenerate pandas_llm_annotate/data/sample.csv: 1,000 customer messages, 600 distinct.

Synthetic (written for this package, no third-party text), with a skewed repeat
rate like a real support inbox: a few messages come back many times.
"""

from __future__ import annotations

import csv
import itertools
import random
from pathlib import Path

INTENTS = {
    "card_lost": ["I lost my {card}", "my {card} was stolen", "can't find my {card} anywhere"],
    "card_arrival": ["my {card} hasn't arrived yet", "when will my {card} arrive",
                     "still waiting for my {card}"],
    "refund": ["I want a refund for {thing}", "how do I get my money back for {thing}",
               "please refund {thing}"],
    "transfer_failed": ["my transfer to {who} failed", "the payment to {who} didn't go through",
                        "why was my transfer to {who} declined"],
    "exchange_rate": ["what exchange rate do you use for {cur}",
                      "the {cur} rate looks wrong", "how much is {cur} today"],
    "top_up": ["my top up with {card} is pending", "can I top up using {card}",
               "top up by {card} failed"],
    "account_closure": ["please close my account", "how do I delete my account",
                        "I want to close my account {when}"],
    "pin_blocked": ["my PIN is blocked", "I entered the wrong PIN three times",
                    "how do I unblock my PIN {when}"],
}
FILL = {
    "card": ["card", "debit card", "new card", "virtual card", "credit card"],
    "thing": ["the hotel booking", "my last order", "a double charge", "the subscription"],
    "who": ["my landlord", "a friend", "my other account", "a supplier"],
    "cur": ["euros", "dollars", "pounds", "yen"],
    "when": ["today", "right now", "this week", ""],
}

PREFIXES = ["", "Hi, ", "Hello! "]
SUFFIXES = ["", "?", ", please help", ". Thanks"]


def distinct_texts() -> list[tuple[str, str]]:
    out = []
    for intent, templates in INTENTS.items():
        for template in templates:
            keys = [k for k in FILL if "{" + k + "}" in template]
            for values in itertools.product(*(FILL[k] for k in keys)):
                text = template.format(**dict(zip(keys, values, strict=True))).strip()
                for pre, post in itertools.product(PREFIXES, SUFFIXES):
                    out.append((pre + text + post, intent))
    return sorted(set(out))


def main() -> None:
    rng = random.Random(7)
    pool = distinct_texts()
    rng.shuffle(pool)
    chosen = pool[:600]
    weights = [1 / (i + 1) ** 0.8 for i in range(len(chosen))]
    rows = list(chosen) + rng.choices(chosen, weights=weights, k=400)
    rng.shuffle(rows)
    path = Path(__file__).resolve().parents[1] / "pandas_llm_annotate/data/sample.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "intent"])
        writer.writerows(rows)
    print(f"{len(rows)} rows, {len(set(r[0] for r in rows))} distinct, {len(pool)} in pool")


if __name__ == "__main__":
    main()
