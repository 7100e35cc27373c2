"""What the simulator answers, computed offline from its deterministic rules."""

from __future__ import annotations

from collections.abc import Sequence

from pandas_llm_annotate.protocol.prompts import build_messages, system_prompt
from pandas_llm_annotate.simulator import answer_messages

SECRET = "sk-test-SECRET-123"


def sim_answer(text: str, prompt: str | None = None, labels: Sequence[str] | None = None) -> str:
    """The simulator's raw answer for `text` asked with `prompt`/`labels`."""
    messages = build_messages(system_prompt(prompt, labels), text)
    return answer_messages(messages)[0]


def varied_text(n_chars: int, seed: int = 0) -> str:
    """A long text of distinct sentences (so its chunks differ), about `n_chars` long."""
    words = ["card", "lost", "refund", "arrival", "statement", "transfer", "exchange",
             "balance", "account", "payment", "delivery", "password"]
    parts: list[str] = []
    size, i = 0, 0
    while size < n_chars:
        a, b = words[(i * 7 + seed) % len(words)], words[(i * 5 + 3 + seed) % len(words)]
        sentence = f"Sentence {i} says my {a} and my {b} need attention. "
        parts.append(sentence)
        size += len(sentence)
        i += 1
    return "".join(parts)
