"""Tests for prompts, label checks, answer parsing and merging."""

from __future__ import annotations

import json
import re
import string
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pandas_llm_annotate.errors import ConfigError
from pandas_llm_annotate.protocol import matching
from pandas_llm_annotate.protocol.matching import merge_answers, normalize_answer
from pandas_llm_annotate.protocol.prompts import (
    DEFAULT_TASK,
    build_messages,
    check_labels,
    system_prompt,
)

BANKING = ("card_arrival", "card_linking", "exchange_rate", "card", "lost_or_stolen_card")
SENTIMENT = ("positive", "negative", "neutral")


def parse_label_block(system: str) -> list[str]:
    """Parse the ``Labels:`` block the way the server simulator does."""
    lines = system.splitlines()
    start = lines.index("Labels:")
    labels = []
    for line in lines[start + 1 :]:
        if not line.startswith("- "):
            assert line == ""  # the block ends with a blank line or the end
            break
        labels.append(line[2:])
    return labels


# --- system_prompt and build_messages -----------------------------------------


def test_system_prompt_labels_only() -> None:
    system = system_prompt(None, SENTIMENT)
    assert system.startswith("Classify the text into exactly one of the labels below.")
    assert "exactly one label" in system
    assert parse_label_block(system) == list(SENTIMENT)


def test_system_prompt_labels_and_prompt() -> None:
    system = system_prompt("  Is this review about the room?  ", ["yes", "no"])
    assert system.startswith("Is this review about the room?\n\n")
    assert "exactly one label" in system and "nothing else" in system
    assert system.index("nothing else") < system.index("Labels:")
    assert parse_label_block(system) == ["yes", "no"]


def test_system_prompt_without_labels() -> None:
    assert (
        system_prompt(None, None) == f"{DEFAULT_TASK}\n\nAnswer with the answer only, no preamble."
    )
    assert system_prompt("   ", None).startswith(DEFAULT_TASK)
    custom = system_prompt("Summarise the review in five words.", None)
    assert (
        custom == "Summarise the review in five words.\n\nAnswer with the answer only, no preamble."
    )
    assert "Labels:" not in custom


def test_default_task_wording() -> None:
    assert "1 to 3 words" in DEFAULT_TASK
    assert "lower case" in DEFAULT_TASK
    assert "no punctuation" in DEFAULT_TASK


def test_system_prompt_is_deterministic() -> None:
    assert system_prompt("p", ["b", "a"]) == system_prompt("p", ("b", "a"))
    assert system_prompt(None, ["b", "a"]) != system_prompt(None, ["a", "b"])
    with pytest.raises(ValueError):
        system_prompt(None, [])


def test_system_prompt_matches_simulator_parser() -> None:
    answers = pytest.importorskip("pandas_llm_annotate.simulator.answers")
    system = system_prompt("Pick the intent.", BANKING)
    labels, rest = answers.parse_labels(system)
    assert labels == BANKING
    assert "Labels:" not in rest


def test_build_messages() -> None:
    assert build_messages("sys", "some text") == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "some text"},
    ]


# --- check_labels --------------------------------------------------------------


def test_check_labels_accepts_iterables() -> None:
    assert check_labels(None) is None
    assert check_labels(["a", " b "]) == ("a", "b")
    assert check_labels(("x", "y")) == ("x", "y")
    assert check_labels({"pos", "neg", "mid"}) == ("mid", "neg", "pos")
    assert check_labels(frozenset({"b", "a"})) == ("a", "b")
    assert check_labels(pd.Index(["x", "y"])) == ("x", "y")
    assert check_labels(np.array(["p", "q"])) == ("p", "q")
    assert check_labels({"k1": 1, "k2": 2}) == ("k1", "k2")
    assert check_labels({"k1": 1}.keys()) == ("k1",)
    assert check_labels([1, 0]) == ("1", "0")
    assert check_labels(pd.Series(["b", "a"])) == ("b", "a")
    assert check_labels(iter(["g"])) == ("g",)
    assert check_labels(["C", "C++", "C#"]) == ("C", "C++", "C#")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("positive", r"not one string.*labels=\['positive'\]"),
        ([], "labels is empty"),
        (["a", "  "], r"labels\[1\] is blank"),
        (["a", None], r"labels\[1\] is missing"),
        (["a", float("nan")], r"labels\[1\] is missing"),
        (["a\nb"], "several lines"),
        (["a", "b", "a "], r"duplicate labels \['a'\]"),
        (["Card Arrival", "card_arrival"], "'Card Arrival' vs 'card_arrival'"),
        (["yes", "YES!"], "'yes' vs 'YES!'"),
        (["?", "ok"], "only punctuation"),
    ],
)
def test_check_labels_errors(labels: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):  # an AnnotateError, also a ValueError
        check_labels(labels)


def test_check_labels_not_iterable() -> None:
    with pytest.raises(ConfigError, match="labels must be a list of strings, got int"):
        check_labels(5)


# --- normalize_answer ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("card_arrival", "card_arrival"),
        ("Card Arrival", "card_arrival"),
        ("card-arrival", "card_arrival"),
        ("  CARD_ARRIVAL.\n", "card_arrival"),
        ('"card arrival"', "card_arrival"),
        ("\u201ccard arrival\u201d", "card_arrival"),
        ("`card`", "card"),
        ("**card_linking**", "card_linking"),
        ("Label: exchange rate", "exchange_rate"),
        ("answer: Exchange Rate!", "exchange_rate"),
        ('{"label": "Lost or stolen card"}', "lost_or_stolen_card"),
        ('```json\n{"intent": "card"}\n```', "card"),
        ("The intent is card arrival.", "card_arrival"),  # "card" only inside it
        ("card arrival or card linking", None),
        ("cards", None),
        ("something else", None),
        ("", None),
        ("  ...  ", None),
    ],
)
def test_normalize_banking(raw: str, expected: str | None) -> None:
    assert normalize_answer(raw, BANKING) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("正面", "正面"),
        ("正面。", "正面"),
        ("答案是正面", "正面"),
        ("不是负面而是正面", None),
        ("Answer：负面", "负面"),
    ],
)
def test_normalize_chinese(raw: str, expected: str | None) -> None:
    assert normalize_answer(raw, ["正面", "负面"]) == expected


def test_normalize_whole_words_only() -> None:
    assert normalize_answer("It is a positive review.", SENTIMENT) == "positive"
    assert normalize_answer("positively neutral", SENTIMENT) == "neutral"
    assert normalize_answer("not positive, negative", SENTIMENT) is None


def test_normalize_free_text() -> None:
    assert normalize_answer('  "Hotel   room\n review."  ', None) == "Hotel room review."
    assert normalize_answer('  "Hotel   Review."  ', None, lowercase=True) == "hotel review"
    assert normalize_answer("**Answer: Room service**", None) == "Room service"
    assert normalize_answer("  ", None) is None
    assert normalize_answer('""', None) is None
    assert normalize_answer("...", None, lowercase=True) is None


ASCII_LABEL = st.from_regex(r"[A-Za-z][A-Za-z0-9 _-]{0,14}[A-Za-z0-9]?", fullmatch=True)


def _valid(labels: list[str]) -> tuple[str, ...]:
    try:
        checked = check_labels(labels)
    except ValueError:
        assume(False)
        raise
    assert checked is not None
    return checked


@st.composite
def _decorated(draw: st.DrawFn, label: str, ascii_only: bool) -> str:
    """Wrap ``label`` the ways a model might answer with it."""
    text = label
    if ascii_only:
        case = draw(st.sampled_from(["lower", "upper", "title", "swapcase", "strip"]))
        text = getattr(text, case)()
        seps = draw(
            st.lists(st.sampled_from([" ", "_", "-", "  "]), min_size=len(text), max_size=len(text))
        )
        text = "".join(seps[i] if ch in " _-" else ch for i, ch in enumerate(text))
    text += draw(st.text(alphabet=".,;:!?\u3002", max_size=2))
    quote = draw(st.sampled_from(["", '"', "'", "`", "\u201c\u201d", "\u2018\u2019"]))
    if quote:
        text = quote[0] + text + quote[-1]
    if draw(st.booleans()):
        text = f"**{text}**"
    text = draw(st.sampled_from(["", "Label: ", "Answer:", "label : "])) + text
    if draw(st.booleans()):
        text = json.dumps({"label": text}, ensure_ascii=draw(st.booleans()))
    return draw(st.sampled_from(["", " ", "\n"])) + text + draw(st.sampled_from(["", " ", "\n"]))


@given(st.data(), st.lists(ASCII_LABEL, min_size=1, max_size=8))
def test_decorated_ascii_label_round_trips(data: st.DataObject, raw_labels: list[str]) -> None:
    labels = _valid(raw_labels)
    for label in labels:
        answer = data.draw(_decorated(label, ascii_only=True))
        assert normalize_answer(answer, labels) == label, answer


@given(st.data(), st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6))
def test_decorated_unicode_label_round_trips(data: st.DataObject, raw_labels: list[str]) -> None:
    labels = _valid(raw_labels)
    for label in labels:
        assert normalize_answer(label, labels) == label
        answer = data.draw(_decorated(label, ascii_only=False))
        assert normalize_answer(answer, labels) == label, answer


@given(st.text(max_size=60), st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6))
def test_normalize_returns_member_or_none(raw: str, raw_labels: list[str]) -> None:
    labels = _valid(raw_labels)
    assert normalize_answer(raw, labels) in (*labels, None)


def _find_by_regex(key: str, labels: tuple[str, ...]) -> str | None:
    """The way `_find_one` worked before: one regex per label (the reference)."""
    by_key: dict[str, str] = {}
    for label in labels:
        by_key.setdefault(matching.label_key(label), label)
    found = {}
    for k, label in by_key.items():
        pattern = re.compile(f"(?<!{matching._LATIN_WORD}){re.escape(k)}(?!{matching._LATIN_WORD})")
        if k and (spans := [m.span() for m in pattern.finditer(key)]):
            found[label] = spans
    if len(found) > 1:
        others = [(span, label) for label, spans in found.items() for span in spans]
        found = {label: spans for label, spans in found.items()
                 if any(not any(o != label and a <= s and e <= b for (a, b), o in others)
                        for s, e in spans)}
    return next(iter(found)) if len(found) == 1 else None


PIECES = st.text(alphabet="ab c_-卡片x1", min_size=1, max_size=6)


@given(st.lists(PIECES, min_size=1, max_size=6), st.lists(PIECES, max_size=6))
def test_phrase_search_matches_one_regex_per_label(raw_labels: list[str],
                                                   words: list[str]) -> None:
    """The dict scan finds what a regex per label found, on answers built from the
    labels' own pieces (overlaps, nesting, CJK next to Latin)."""
    labels = _valid(raw_labels)
    key = matching.label_key(" ".join(words + list(labels[:2])))
    index = matching._index(labels)
    assert matching._find_one(key, index) == _find_by_regex(key, labels)


def test_ten_thousand_labels_cost_little_cpu() -> None:
    """Before: one compiled regex per label at the first answer, 23-33 s of CPU on the
    event loop for 10,000 labels (now about 0.02 s; the bound is 100 times that)."""
    labels = [f"label number {i} group_{i % 97}" for i in range(10_000)]
    start = time.process_time()
    assert normalize_answer("I think label number 77 group_77, surely", labels) == (
        "label number 77 group_77")
    assert normalize_answer("label number 5 group_5", labels) == "label number 5 group_5"
    assert normalize_answer("none of these", labels) is None
    assert time.process_time() - start < 2.0


@given(st.text(alphabet=string.ascii_letters + " .!\"'", max_size=40))
def test_free_text_is_clean(raw: str) -> None:
    answer = normalize_answer(raw, None)
    if answer is not None:
        assert answer == answer.strip() and "  " not in answer
    lower = normalize_answer(raw, None, lowercase=True)
    if lower is not None:
        assert lower == lower.lower() and lower[-1] not in ".!"


# --- merge_answers ---------------------------------------------------------------


def test_merge_vote_and_ties() -> None:
    assert merge_answers(["a", "b", "b"], ["a", "b"]) == "b"
    assert merge_answers(["a", "b", "b", "a"], ["a", "b"]) == "a"
    assert merge_answers(["c", "b", "a"], ["a", "b", "c"]) == "c"
    assert merge_answers(["a"], ["a"]) == "a"


def test_merge_free_text() -> None:
    assert merge_answers(["room", "food", "room", "Room"], None) == "room; food; Room"
    assert merge_answers(["only"], None) == "only"


def test_merge_empty() -> None:
    with pytest.raises(ValueError):
        merge_answers([], None)
    with pytest.raises(ValueError):
        merge_answers([], ["a"])


@given(st.lists(st.sampled_from(SENTIMENT), min_size=1, max_size=20))
def test_merge_vote_property(answers: list[str]) -> None:
    counts = Counter(answers)
    top = max(counts.values())
    winner = merge_answers(answers, SENTIMENT)
    assert counts[winner] == top
    assert answers.index(winner) == min(answers.index(a) for a in counts if counts[a] == top)


@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=10))
def test_merge_free_text_property(answers: list[str]) -> None:
    assume(not any("; " in a for a in answers))
    assert merge_answers(answers, None).split("; ") == list(dict.fromkeys(answers))
