"""Tests for token estimates and text splitting."""

from __future__ import annotations

import csv
import itertools
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pandas_llm_annotate.pipeline.chunking import (
    DEFAULT_MAX_CHUNK_TOKENS,
    estimate_tokens,
    split_text,
)

CHNSENTICORP = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chnsenticorp_htl_all.csv"
)

# Alphabets that exercise every code path: sentence ends, whitespace, CRLF,
# CJK (ideographs, kana, Hangul, full-width forms) and other scripts.
CJK_SAMPLES = "中文字漢あいカナ한국어。！？；，、（）ＡＢ１"
MIXED = st.text(
    alphabet=st.sampled_from(
        list("ab xyz.!?;\n\r\t\"')…") + list(CJK_SAMPLES) + ["é", "ß", "😀", "\u0301"]
    ),
    max_size=400,
)


def _within(chunks: list[str], budget: int) -> bool:
    return all(estimate_tokens(chunk) <= budget for chunk in chunks)


# --- estimate_tokens ---------------------------------------------------------


def test_estimate_empty_and_small() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens(" ") == 1


def test_estimate_cjk_one_per_char() -> None:
    assert estimate_tokens("中文") == 2
    assert estimate_tokens("ひらがなカタカナ") == 8
    assert estimate_tokens("한국어") == 3
    assert estimate_tokens("。！？，") == 4
    assert estimate_tokens("㐀") == 1  # ext A
    assert estimate_tokens("𠀀") == 1  # ext B
    assert estimate_tokens("中文abcd") == 3


def test_default_budget() -> None:
    assert DEFAULT_MAX_CHUNK_TOKENS == 1000


@given(st.text(alphabet=st.sampled_from(list(CJK_SAMPLES)), max_size=200))
def test_estimate_cjk_property(text: str) -> None:
    assert estimate_tokens(text) == len(text)


@given(st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=200))
def test_estimate_latin_property(text: str) -> None:
    assert estimate_tokens(text) == math.ceil(len(text) / 4)


@given(MIXED)
def test_estimate_bounds(text: str) -> None:
    n = estimate_tokens(text)
    assert (n == 0) == (text == "")
    assert n <= len(text)


# --- split_text: examples ----------------------------------------------------


def test_bad_budget() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        split_text("abc", 0)


def test_under_budget_unchanged() -> None:
    assert split_text("", 5) == [""]
    assert split_text("Short text.", 100) == ["Short text."]


def test_sentences_packed_greedily() -> None:
    text = "One two. Three four! Five six? Seven; eight\nnine ten."
    assert split_text(text, 6) == [
        "One two. Three four! ",
        "Five six? Seven; eight\n",
        "nine ten.",
    ]


def test_terminator_needs_whitespace() -> None:
    # "3.14" and "e.g" are not sentence ends; the cut falls at a space.
    text = "Pi is 3.14 and e.g. tau is 6.28 which is fine."
    chunks = split_text(text, 4)
    assert "".join(chunks) == text
    assert _within(chunks, 4)
    assert not any(c.endswith("3.") or c.endswith("6.") for c in chunks)


def test_cjk_sentences() -> None:
    text = "房间很大。服务很好！早餐一般？还会再来；谢谢…"
    chunks = split_text(text, 6)
    assert chunks == ["房间很大。", "服务很好！", "早餐一般？", "还会再来；", "谢谢…"]


def test_closing_quote_stays_with_sentence() -> None:
    text = "他说：“很好！”然后走了。"
    assert split_text(text, 8) == ["他说：“很好！”", "然后走了。"]


def test_long_sentence_split_at_whitespace() -> None:
    text = "word " * 40
    chunks = split_text(text, 5)
    assert "".join(chunks) == text
    assert _within(chunks, 5)
    assert all(chunk.endswith(" ") for chunk in chunks)


def test_giant_word_split_at_characters() -> None:
    text = "x" * 103
    chunks = split_text(text, 10)
    assert [len(c) for c in chunks] == [40, 40, 23]


def test_cjk_run_without_punctuation() -> None:
    text = "好" * 25
    assert [len(c) for c in split_text(text, 10)] == [10, 10, 5]


def test_crlf_never_split() -> None:
    text = "abc\r\n" * 50 + "\r\n" * 50
    for budget in (1, 2, 3, 7):
        chunks = split_text(text, budget)
        assert "".join(chunks) == text
        assert _within(chunks, budget)
        for left, right in itertools.pairwise(chunks):
            assert not (left.endswith("\r") and right.startswith("\n"))


def test_oversized_sentence_tail_joins_next_sentence() -> None:
    text = "aaaa " * 4 + "end. Go."
    assert split_text(text, 4) == ["aaaa aaaa aaaa ", "aaaa end. Go."]


# --- split_text: properties --------------------------------------------------


@given(MIXED, st.integers(min_value=1, max_value=60))
def test_split_lossless_and_within_budget(text: str, budget: int) -> None:
    chunks = split_text(text, budget)
    assert "".join(chunks) == text
    assert _within(chunks, budget)
    if len(chunks) > 1:
        assert all(chunks)
        for left, right in itertools.pairwise(chunks):
            assert not (left.endswith("\r") and right.startswith("\n"))


@given(st.text(max_size=300), st.integers(min_value=1, max_value=40))
def test_split_any_unicode(text: str, budget: int) -> None:
    chunks = split_text(text, budget)
    assert "".join(chunks) == text
    assert _within(chunks, budget)


@given(MIXED)
def test_under_budget_returns_text(text: str) -> None:
    assert split_text(text, max(1, estimate_tokens(text))) == [text]


@given(
    st.lists(
        st.text(alphabet="abcdefgh ", min_size=1, max_size=30).map(lambda s: s.strip() or "x"),
        min_size=1,
        max_size=30,
    ),
    st.integers(min_value=10, max_value=40),
)
def test_chunks_end_at_sentence_ends(sentences: list[str], budget: int) -> None:
    # Each sentence fits the budget, so every chunk is whole sentences.
    text = "".join(f"{s}. " for s in sentences)
    chunks = split_text(text, budget)
    assert "".join(chunks) == text
    assert _within(chunks, budget)
    assert all(chunk.endswith(". ") for chunk in chunks)
    # Greedy: a chunk plus the next chunk's first sentence would not fit.
    for left, right in itertools.pairwise(chunks):
        first = right[: right.index(". ") + 2]
        assert estimate_tokens(left + first) > budget


@settings(max_examples=50)
@given(st.text(alphabet="中文字。", max_size=300), st.integers(min_value=1, max_value=30))
def test_cjk_chunk_sizes(text: str, budget: int) -> None:
    chunks = split_text(text, budget)
    assert "".join(chunks) == text
    assert all(len(chunk) <= budget for chunk in chunks)


# --- large inputs (correctness only; they run in well under a second) --------


def _latin_megabyte() -> str:
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    parts: list[str] = []
    size = 0
    while size < 1_000_000:
        n = rng.randint(3, 40)
        sentence = " ".join(rng.choice(words) for _ in range(n)) + rng.choice(
            [". ", "! ", "? ", "\n"]
        )
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)[:1_000_000]


def test_one_megabyte_latin() -> None:
    text = _latin_megabyte()
    for budget in (DEFAULT_MAX_CHUNK_TOKENS, 100):
        chunks = split_text(text, budget)
        assert "".join(chunks) == text
        assert _within(chunks, budget)
        assert len(chunks) >= estimate_tokens(text) // budget


def test_one_megabyte_chinese() -> None:
    text = ("这家酒店位置很好，离地铁站很近，服务也很周到。早餐种类不多！" * 40_000)[:1_000_000]
    for budget in (DEFAULT_MAX_CHUNK_TOKENS, 100):
        chunks = split_text(text, budget)
        assert "".join(chunks) == text
        assert _within(chunks, budget)
        assert all(chunk[-1] in "。！" for chunk in chunks[:-1])


@pytest.mark.parametrize("text", ["x" * 1_000_000, "酒店" * 500_000, "a " * 500_000])
def test_one_megabyte_without_sentence_ends(text: str) -> None:
    chunks = split_text(text, DEFAULT_MAX_CHUNK_TOKENS)
    assert "".join(chunks) == text
    assert _within(chunks, DEFAULT_MAX_CHUNK_TOKENS)


# --- real data ---------------------------------------------------------------


def test_chnsenticorp_reviews() -> None:
    if not CHNSENTICORP.exists():
        pytest.skip(f"shared data is absent: {CHNSENTICORP} not found")
    with CHNSENTICORP.open(encoding="utf-8-sig", newline="") as f:
        reviews = [row["review"] for row in csv.DictReader(f)]
    assert len(reviews) > 7000
    split_reviews = 0
    for review in reviews:
        chunks = split_text(review, 100)
        assert "".join(chunks) == review
        assert _within(chunks, 100)
        split_reviews += len(chunks) > 1
    assert split_reviews > 0
