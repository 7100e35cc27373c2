"""Guards against false friends: texts a sentence embedder finds close but that mean
something else. Two texts may share an answer only if their signatures agree:

- the same number of negations (EN: not, no, never, n't, cannot, without, …;
  ZH: 不 没 沒 无 無 别 別 非 未 莫 勿 否 甭),
- the same numbers (digits and number words; "2" and "two" agree, "1,000" and "1000" too),
- the same currencies and units of amount (`$`, "dollars", "€", 元, "%", …),
- the same dates and times (months, weekdays, today/tomorrow, day/week/month, last/next,
  before/after, 今天/明天, 星期…),
- the same named entities: a capitalised word inside a sentence, or an all-caps word,
  must occur (in any case) in the other text too. ("Visa" vs "Mastercard" differ;
  "ATM" vs "atm" agree.)
- the same quantifiers and scope words (all, any, some, only, extra, another, more, less,
  both, each, …): "my money" vs "all my money" differ.
- no substituted word: one text may add or drop words, change case, punctuation,
  function words (a/the, do/can/will, is/are/have), greetings and fillers (please, hi,
  thanks), spelling (one typo in a word of 5+ letters) or inflection (card/cards), but
  not replace a word by another ("more" vs "less", "sent" vs "received", "apple pay" vs
  "google pay", 干净 vs 脏). Embeddings barely see a one-word change in a long text
  (cosine 0.99+), so this is what keeps antonyms and lower-case entities apart.
  Each CJK character counts as a word. Word order is not checked.

Pure functions, no dependencies: cheap enough to run on every candidate pair.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from ..text import CJK_LETTER

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+(?:[.,]\d+)*")



def _words(text: str) -> list[str]:
    return text.split()


NEGATION_WORDS = frozenset(_words(
    "not no never none nobody nothing nowhere neither nor without cannot nope "
    "dont doesnt didnt cant wont isnt arent wasnt werent havent hasnt hadnt couldnt "
    "shouldnt wouldnt mustnt neednt aint"
))
NEGATION_ZH = frozenset("不没沒无無别別非未莫勿否甭")

NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
    "dozen": "12", "half": "0.5", "double": "x2", "twice": "x2", "triple": "x3",
    "first": "#1", "third": "#3", "fourth": "#4", "fifth": "#5", "tenth": "#10",
}
_ZH_NUMERALS = re.compile("[零〇一二两三四五六七八九十百千万亿]+")

CURRENCIES = {
    "$": "usd", "usd": "usd", "dollar": "usd", "dollars": "usd", "bucks": "usd", "美元": "usd",
    "€": "eur", "eur": "eur", "euro": "eur", "euros": "eur", "欧元": "eur",
    "£": "gbp", "gbp": "gbp", "pound": "gbp", "pounds": "gbp", "quid": "gbp", "英镑": "gbp",
    "¥": "jpy/cny", "jpy": "jpy", "yen": "jpy", "日元": "jpy",
    "cny": "cny", "rmb": "cny", "yuan": "cny", "元": "cny", "块": "cny", "人民币": "cny",
    "₹": "inr", "inr": "inr", "rupee": "inr", "rupees": "inr", "₩": "krw", "krw": "krw",
    "₽": "rub", "rub": "rub", "chf": "chf", "franc": "chf", "francs": "chf",
    "aud": "aud", "cad": "cad", "%": "percent", "percent": "percent", "cent": "cent",
    "cents": "cent", "pence": "pence", "penny": "pence",
}
_CURRENCY_SYMBOLS = re.compile("[$€£¥₹₩₽%]|美元|欧元|英镑|日元|人民币|元|块")

TIME_WORDS = {
    **{m: m for m in _words(
        "january february march april june july august september october november december "
        "monday tuesday wednesday thursday friday saturday sunday weekend weekday "
        "today tonight tomorrow yesterday morning afternoon evening night noon midnight "
        "before after ago last next previous later earlier soon"
    )},
    **{a: m for a, m in (
        ("jan", "january"), ("feb", "february"), ("apr", "april"), ("jun", "june"),
        ("jul", "july"), ("aug", "august"), ("sep", "september"), ("sept", "september"),
        ("oct", "october"), ("nov", "november"), ("dec", "december"), ("tues", "tuesday"),
        ("thurs", "thursday"), ("weekends", "weekend"), ("weekdays", "weekday"),
    )},
    **{u + s: u for u in ("second", "minute", "hour", "day", "week", "month", "year")
       for s in ("", "s")},
    "daily": "day", "weekly": "week", "monthly": "month", "yearly": "year", "annual": "year",
    "hourly": "hour", "fortnight": "fortnight", "overnight": "night",
}
_TIME_ZH = re.compile(
    "今天|明天|昨天|前天|后天|今晚|昨晚|明晚|上午|下午|晚上|早上|中午|凌晨|上周|下周|本周|这周|"
    "上个月|下个月|这个月|本月|去年|今年|明年|星期.|周[一二三四五六日天末]|礼拜.|以前|以后|之前|之后|"
    "[年月日号天周]|小时|分钟|秒"
)
_MONTH_MAY = re.compile(r"\bmay\b(?=\s*\d)|(?<=\d)\s*may\b|(?<=\d)(?:st|nd|rd|th)?\s+of\s+may\b")
FUNCTION_WORDS = frozenset(_words(
    "a an the do does did done doing can could would will shall should may might must "
    "is are am was were be been being have has had having i im ive please pls plz kindly "
    "hi hello hey dear thanks thank thx ty ok okay just so well um uh oh guys team"
))
QUALIFIERS = frozenset(_words(
    "all any some every each both only extra additional another other others more less "
    "most least fewer few many much several partial full whole entire again also"
))
_CJK = CJK_LETTER
_SUFFIXES = ("ing", "ed", "es", "s", "ly")
_NOT_ENTITIES = frozenset({"i", "i'm", "i've", "i'd", "i'll", "ok", "okay"})
_SENTENCE_END = re.compile(r"[.!?。！？;；:\n]")


@dataclass(frozen=True)
class Signature:
    """What must agree between two texts for one to reuse the other's answer."""

    negations: int
    numbers: tuple[str, ...]
    currencies: frozenset[str]
    times: frozenset[str]
    qualifiers: frozenset[str]
    entities: frozenset[str]  # lower-cased
    words: frozenset[str]  # lower-cased words, to look entities up in the other text
    content: Counter[str]  # words that may be added or dropped but not replaced


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)


def _number(token: str) -> str:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", token):
        token = token.replace(",", "")
    token = token.replace(",", ".")
    try:
        value = Decimal(token).normalize()
    except InvalidOperation:
        return token
    return format(value, "f")


def _entities(text: str) -> set[str]:
    found: set[str] = set()
    for sentence in _SENTENCE_END.split(text):
        tokens = _WORD.findall(sentence)
        for pos, token in enumerate(tokens):
            if not token[:1].isalpha() or token.lower() in _NOT_ENTITIES:
                continue
            caps = len(token) > 1 and token.isupper()
            if caps or (pos > 0 and token[:1].isupper()):
                found.add(token.lower())
    return found


@lru_cache(maxsize=65536)
def signature(text: str) -> Signature:
    """The guard signature of one text (memoised)."""
    norm = _normalise(text)
    lower = norm.lower()
    words = _WORD.findall(lower)
    bases = [w.split("'")[0] if "'" in w and not w.endswith("n't") else w for w in words]
    negations = sum(1 for w in words if w in NEGATION_WORDS or w.endswith("n't"))
    negations += sum(1 for ch in norm if ch in NEGATION_ZH)
    numbers: list[str] = [_number(w) for w in words if w[0].isdigit()]
    numbers += [NUMBER_WORDS[w] for w in bases if w in NUMBER_WORDS]
    numbers += _ZH_NUMERALS.findall(norm)
    currencies = {CURRENCIES[w] for w in bases if w in CURRENCIES}
    currencies |= {CURRENCIES[s] for s in _CURRENCY_SYMBOLS.findall(norm)}
    times = {TIME_WORDS[w] for w in bases if w in TIME_WORDS}
    times |= set(_TIME_ZH.findall(norm))
    if _MONTH_MAY.search(lower):
        times.add("may")
    return Signature(
        negations=negations,
        numbers=tuple(sorted(Counter(numbers).elements())),
        currencies=frozenset(currencies),
        times=frozenset(times),
        qualifiers=frozenset(w for w in bases if w in QUALIFIERS),
        entities=frozenset(_entities(norm)),
        words=frozenset(words),
        content=_content(words, norm),
    )


def _content(words: list[str], norm: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for word in words:
        base = word.split("'")[0] if "'" in word and not word.endswith("n't") else word
        if (word in NEGATION_WORDS or word.endswith("n't") or base in FUNCTION_WORDS
                or base[0].isdigit() or base in NUMBER_WORDS or base in CURRENCIES
                or base in TIME_WORDS):
            continue  # negations, numbers, amounts and dates have their own guards
        if _CJK.search(base):
            continue
        out[base] += 1
    out.update(ch for ch in _CJK.findall(norm) if ch not in NEGATION_ZH)
    return out


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _one_typo(a: str, b: str) -> bool:
    """One substitution, insertion, deletion or swap of neighbours, in words of 5+ letters."""
    if min(len(a), len(b)) < 5 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = next((i for i in range(len(short)) if short[i] != long[i]), len(short))
    return short[i:] == long[i + 1 :]


def _substituted(a: Counter[str], b: Counter[str]) -> bool:
    """True when words of `a` were replaced by different words in `b`."""
    only_a, only_b = list((a - b).elements()), list((b - a).elements())
    if not only_a or not only_b:
        return False  # only added or dropped words
    for word in only_a[:]:
        match = next((o for o in only_b if _stem(o) == _stem(word) or _one_typo(o, word)), None)
        if match is not None:
            only_a.remove(word)
            only_b.remove(match)
    return bool(only_a and only_b)


def conflict(a: str, b: str, *, lexical: bool = True) -> str | None:
    """Why `a` and `b` must not share an answer (a short reason), or None if they may.
    `lexical=False` leaves out the quantifier and substituted-word guards, keeping only
    negation, numbers, amounts, dates and entities (for measurements)."""
    sa, sb = signature(a), signature(b)
    if sa.negations != sb.negations:
        return "negation"
    if sa.numbers != sb.numbers:
        return "number"
    if sa.currencies != sb.currencies:
        return "amount"
    if sa.times != sb.times:
        return "date"
    if not (sa.entities <= sb.words and sb.entities <= sa.words):
        return "entity"
    if not lexical:
        return None
    if sa.qualifiers != sb.qualifiers:
        return "quantifier"
    if _substituted(sa.content, sb.content):
        return "substitution"
    return None


def compatible(a: str, b: str) -> bool:
    """True when no guard objects to `a` reusing the answer of `b`."""
    return conflict(a, b) is None
