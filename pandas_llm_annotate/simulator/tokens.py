"""The simulator's token count: what its `usage` reports and its token buckets charge.

Not the client's estimate (`text.estimate_prompt_tokens`): a crude pre-tokenizer in
the spirit of BPE, so that the estimate has something independent to be measured
against. A run of letters with its leading space is one token per 8 letters (rounded
up), a group of up to 3 digits one token, an underscore one token, a run of other
symbols one token per 2 (rounded up), a run of whitespace not before a word one token,
and a CJK character one token. Against SmolLM2's tokenizer: 300 banking77 texts +4 %,
the 77-intent system prompt −2 %, the same texts packed 20 to a request (JSON) +0.5 %.
A prompt adds 3 tokens per message and 3 for the answer's start (OpenAI's published
count for its chat format).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..text import CJK_CHARS

WORD_LETTERS = 8  # letters per token in a long word
PER_MESSAGE = 3
PER_PROMPT = 3

_PIECE = re.compile(
    f"[{CJK_CHARS}]"  # one CJK character
    f"| ?[^\\W\\d_{CJK_CHARS}]+"  # a word (letters, not CJK) with its leading space
    "| ?[0-9]{1,3}"  # up to 3 digits
    f"| ?[^\\s\\w{CJK_CHARS}]+|_"  # symbols
    "|\\s+"  # whitespace
)


def count_tokens(text: str) -> int:
    """The simulator's tokens in `text` (at least 1)."""
    total = 0
    for match in _PIECE.finditer(text):
        piece = match.group().lstrip(" ") or " "
        if piece[-1].isalpha() and len(piece) > WORD_LETTERS:
            total += -(-len(piece) // WORD_LETTERS)
        elif len(piece) > 2 and not piece[-1].isspace() and not piece[-1].isalnum():
            total += -(-len(piece) // 2)  # a run of symbols: a token per 2
        else:
            total += 1
    return max(1, total)


def prompt_tokens(contents: Iterable[str]) -> int:
    """The simulator's prompt tokens for messages with these contents."""
    texts = list(contents)
    return sum(count_tokens(t) for t in texts) + PER_MESSAGE * len(texts) + PER_PROMPT
