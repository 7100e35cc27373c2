"""A labelled set of near-miss pairs, built deterministically from real sentences.

Each pair is (a, b, kind, equivalent). Non-equivalent kinds change the meaning with a
small edit (the false friends a semantic cache must not merge); equivalent kinds change
only the surface (what it should merge). Sources: banking77 (English) and ChnSentiCorp
(Chinese) from ../shared/data, plus a few templates for entities banking77 lacks.
No paraphrase corpus installs from PyPI with its data inside the wheel, so none is used.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PER_KIND = 200


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    kind: str
    equivalent: bool


def _first(pattern: str, repl: str | Callable[[re.Match[str]], str],
           flags: int = re.IGNORECASE) -> Callable[[str], str | None]:
    rx = re.compile(pattern, flags)

    def edit(text: str) -> str | None:
        out = rx.sub(repl, text, count=1)
        return out if out != text else None

    return edit


def _swap(pairs: Iterable[tuple[str, str]],
          case: int = re.IGNORECASE) -> Callable[[str], str | None]:
    table: dict[str, str] = {}
    for x, y in pairs:
        table[x.lower()], table[y.lower()] = y, x
    rx = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(table, key=len, reverse=True))
                    + r")\b", case)

    def edit(text: str) -> str | None:
        m = rx.search(text)
        if m is None:
            return None
        new = table[m.group(0).lower()]
        if m.group(0)[:1].isupper() and new[:1].islower():
            new = new[:1].upper() + new[1:]
        return text[: m.start()] + new + text[m.end():]

    return edit


def _bump(m: re.Match[str]) -> str:
    return str(int(m.group(0)) + 1)


def _typo(text: str) -> str | None:
    words = re.findall(r"[a-z]{6,}", text)
    if not words:
        return None
    w = words[0]
    return text.replace(w, w[:2] + w[3] + w[2] + w[4:], 1)


NEGATE_AUX = _first(r"\b(is|are|was|were|has|have|had|can|will|should|would|could)\b"
                    r"(?!n't| not| never)",
                    r"\1 not")
NEGATE_VERB = _first(r"\bI (want|need|know|understand|see|recognize|remember|like|think)\b",
                     r"I don't \1")
NEGATE_PAST = _first(r"\bI (received|got|made|used|did|ordered|requested|authorized)\b"
                     r"(?! not)",
                     r"I never \1")
NON_EQUIVALENT: dict[str, list[Callable[[str], str | None]]] = {
    "negation": [NEGATE_VERB, NEGATE_PAST, NEGATE_AUX],
    "number": [_first(r"\b\d+\b", _bump)],
    "amount": [_first(r"\$", "€", 0),
               _swap([("dollars", "euros"), ("pounds", "dollars"), ("euro", "pound"),
                      ("GBP", "EUR"), ("USD", "GBP")])],
    "date": [_swap([("today", "yesterday"), ("tomorrow", "today"), ("Monday", "Friday"),
                    ("week", "month"), ("weeks", "months"), ("days", "weeks"),
                    ("last", "next"), ("hours", "days")])],
    "entity": [_swap([("UK", "US"), ("Spain", "France"), ("China", "Japan"),
                      ("Europe", "Asia"), ("Mastercard", "Visa"), ("Apple Pay", "Google Pay"),
                      ("Germany", "Italy"), ("America", "Canada")], 0)],
    "entity_lowercase": [_swap([("uk", "us"), ("spain", "france"), ("mastercard", "visa"),
                                ("apple pay", "google pay"), ("europe", "asia")], 0)],
    "antonym": [_swap([("increase", "decrease"), ("accepted", "declined"),
                       ("approved", "declined"), ("deposit", "withdrawal"),
                       ("received", "sent"), ("lock", "unlock"), ("freeze", "unfreeze"),
                       ("higher", "lower"), ("more", "less"), ("incoming", "outgoing"),
                       ("physical", "virtual"), ("activate", "deactivate"),
                       ("add", "remove"), ("old", "new"), ("top up", "withdraw"),
                       ("credit", "debit"), ("before", "after"), ("refund", "charge")])],
}
EQUIVALENT: dict[str, list[Callable[[str], str | None]]] = {
    "case_punctuation": [lambda t: t.lower().rstrip("?.!") + ("!" if t.endswith("?") else "?")],
    "politeness": [lambda t: "Please, " + t[:1].lower() + t[1:],
                   lambda t: "Hi, " + t[:1].lower() + t[1:],
                   lambda t: t.rstrip() + " Thanks!"],
    "contraction": [_swap([("do not", "don't"), ("cannot", "can't"), ("I am", "I'm"),
                           ("is not", "isn't"), ("did not", "didn't"), ("I have", "I've")])],
    "typo": [_typo],
}

ZH_NEGATE = _first("很(好|干净|满意|方便|舒服|热情|安静|大|新)", r"很不\1", 0)
ZH_EQUIVALENT = [lambda t: t.rstrip("。！!") + "！", lambda t: t + "。"]
TEMPLATES = [
    ("I want to send money to {}", ["John", "Mary", "Ahmed", "Li Wei", "Sofia"]),
    ("Can I use my card in {}?", ["Spain", "France", "Mexico", "Japan", "Brazil"]),
    ("Does {} work with my account?", ["Apple Pay", "Google Pay", "Samsung Pay", "PayPal"]),
]


def _pairs(texts: list[str], kind: str, edits: list[Callable[[str], str | None]],
           equivalent: bool, rng: random.Random, limit: int) -> list[Pair]:
    order = texts[:]
    rng.shuffle(order)
    out: list[Pair] = []
    for text in order:
        start = len(out) % len(edits)  # rotate, so every edit gets its share
        for edit in edits[start:] + edits[:start]:
            b = edit(text)
            if b is not None and b != text:
                out.append(Pair(text, b, kind, equivalent))
                break
        if len(out) >= limit:
            break
    return out


def build(english: list[str], chinese: list[str], per_kind: int = PER_KIND,
          seed: int = 0) -> list[Pair]:
    """The near-miss set: per_kind pairs per kind where the source sentences allow."""
    rng = random.Random(seed)
    english = sorted({t.strip() for t in english if isinstance(t, str) and t.strip()})
    pairs: list[Pair] = []
    for kind, edits in NON_EQUIVALENT.items():
        pairs += _pairs(english, kind, edits, False, rng, per_kind)
    for template, names in TEMPLATES:
        pairs += [Pair(template.format(x), template.format(y), "entity", False)
                  for x in names for y in names if x < y]
    for kind, edits in EQUIVALENT.items():
        pairs += _pairs(english, kind, edits, True, rng, per_kind)
    short = sorted({t.strip() for t in chinese if isinstance(t, str) and 4 <= len(t) <= 80})
    pairs += _pairs(short, "negation_zh", [ZH_NEGATE], False, rng, per_kind)
    pairs += _pairs(short, "punctuation_zh", ZH_EQUIVALENT, True, rng, per_kind)
    return pairs
