"""Token estimates and lossless splitting of long text cells.

The estimate is a cheap heuristic, not a tokenizer: CJK characters count
about one token each and all other characters about four per token. It is
used to keep each request below a budget, so it errs on the high side for
typical English text.
"""

from __future__ import annotations

import bisect
import re

from ..text import CJK_ONE, char_counts, estimate_tokens, token_cost

__all__ = ["DEFAULT_MAX_CHUNK_TOKENS", "estimate_tokens", "split_text"]  # estimate: from text.py

#: Default token budget of one chunk sent to the model.
DEFAULT_MAX_CHUNK_TOKENS = 1000

# A sentence end: ASCII . ! ? ; followed by whitespace or the end (closing
# quotes/brackets allowed in between), a newline, or CJK/full-width
# terminators anywhere. Trailing whitespace stays with the sentence.
_SENTENCE_END = re.compile(
    r"""(?:[.!?;]["'\u201d\u2019)\]]*(?=\s|\Z)"""
    "|[\n\u3002\uff01\uff1f\uff1b\u2026\uff0e\uff61]+"
    "[\"'\u201d\u2019\u300d\u300f\uff09)\\]]*"
    r")\s*"
)
# The longest prefix ending in whitespace that has some non-whitespace.
_LAST_SPACE = re.compile(r"\s*\S[\s\S]*\s")


def _reach(text: str, start: int, budget: int) -> int:
    """Return the largest ``end`` with ``text[start:end]`` within budget.

    Grows the window by the remaining budget (one character adds at most
    one token), so the work is linear in the window length apart from a
    logarithmic number of steps.
    """
    n = len(text)
    end, cjk, other, room = start, 0, 0, budget
    while room > 0 and end < n:
        step = min(n, end + room)
        c, o = char_counts(text[end:step])
        cjk, other, end = cjk + c, other + o, step
        room = budget - token_cost(cjk, other)
    # Fill the last partial token with non-CJK characters.
    while end < n and other % 4 and not CJK_ONE.match(text, end):
        other, end = other + 1, end + 1
    return end


def _cut(text: str, start: int, limit: int, ends: list[int]) -> int:
    """Best cut in ``(start, limit]``: sentence end, whitespace, character."""
    i = bisect.bisect_right(ends, limit)
    if i and ends[i - 1] > start:
        return ends[i - 1]
    space = _LAST_SPACE.match(text, start, limit)
    cut = space.end() if space else limit
    if text[cut - 1] == "\r" and text[cut] == "\n":
        # Keep CRLF together; "\r\n" alone costs 1 token, so it fits.
        cut = cut - 1 if cut - 1 > start else cut + 1
    return cut


def split_text(text: str, max_tokens: int = DEFAULT_MAX_CHUNK_TOKENS) -> list[str]:
    r"""Split ``text`` into chunks of at most ``max_tokens`` estimated tokens.

    Sentences end in ``. ! ? ;`` before whitespace or the end, in a
    newline, or in ``。！？；…`` anywhere; the terminator and the whitespace
    after it stay with the sentence. Consecutive sentences are packed
    greedily into chunks. A sentence over the budget is cut after
    whitespace, and a run without whitespace at a character position
    (never inside ``\r\n``), so every chunk fits the budget.

    The split is lossless: ``"".join(split_text(t, n)) == t``. A text
    within the budget (including ``""``) is returned as ``[text]``;
    otherwise chunks are non-empty, and whitespace-only only where the
    text has a whitespace run longer than the budget. Linear time: a
    1 MB cell takes tens of milliseconds at the default budget.

    Raises:
        ValueError: if ``max_tokens < 1``.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if estimate_tokens(text) <= max_tokens:
        return [text]
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    chunks: list[str] = []
    start, n = 0, len(text)
    while start < n:
        end = _reach(text, start, max_tokens)
        if end < n:
            end = _cut(text, start, end, ends)
        chunks.append(text[start:end])
        start = end
    return chunks
