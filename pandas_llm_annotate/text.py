"""Text facts shared by every layer: which characters are CJK, and a token estimate.

One place for the CJK ranges: the token estimate (chunking, packing, the limiter's
cost, the simulator's usage) counts `CJK_CHARS`, and the semantic guards and the
simulator's answers look at `CJK_LETTERS` (the same ranges without punctuation and
full-width forms).
"""

from __future__ import annotations

import re

# Letters: Hangul Jamo, Hiragana, Katakana, Hangul compatibility Jamo, Katakana
# extension, CJK Unified Ideographs (incl. ext. A), Hangul syllables, compatibility
# ideographs and the supplementary ideograph planes (ext. B and later).
CJK_LETTERS = (
    "\u1100-\u11ff"
    "\u3040-\u30ff"
    "\u3130-\u318f"
    "\u31f0-\u31ff"
    "\u3400-\u4dbf"
    "\u4e00-\u9fff"
    "\uac00-\ud7af"
    "\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
# Counted one token each: the letters, CJK punctuation and full-width forms.
CJK_CHARS = CJK_LETTERS + "\u3000-\u303f\uff00-\uffef"
CJK_RUN = re.compile(f"[{CJK_CHARS}]+")
CJK_ONE = re.compile(f"[{CJK_CHARS}]")
CJK_LETTER = re.compile(f"[{CJK_LETTERS}]")


def char_counts(text: str) -> tuple[int, int]:
    """Return (CJK characters, other characters) of ``text``."""
    if text.isascii():
        return 0, len(text)
    other = len(CJK_RUN.sub("", text))
    return len(text) - other, other


def token_cost(cjk: int, other: int) -> int:
    """Estimated tokens for the given character counts."""
    return cjk + -(-other // 4)


def estimate_tokens(text: str) -> int:
    """Estimate the number of tokens in ``text``.

    CJK characters (ideographs, kana, Hangul, CJK punctuation and full-width
    forms) count one token each; all other characters count one token per four
    characters, rounded up. ``""`` gives 0 and any non-empty text at least 1.
    One regex pass: a 1 MB string takes a few milliseconds. A heuristic, not a
    tokenizer: it errs on the high side for typical English text.
    """
    return token_cost(*char_counts(text))
