"""The text bar's lines for a given terminal width: pure functions of a `Snapshot`.

Laid out for 80 columns first. A line is a row of fields joined by ` · `; each field
has forms from the fullest to the shortest (`""` drops it). When a line is too wide,
fields shrink one step at a time in a fixed order (counters at zero and the first-token
latency first; the ETA and the counts of trouble last), so a field is never cut in
the middle. While running, in a terminal (one line elsewhere, details shrinking first):

    annotate  43% |██████████▎             | 430/1,000 rows · 52.0 rows/s · ETA 11.0 s
      in flight 16/32 · p50 0.213 s · p95 1.02 s · 429s 5 · retries 12 · errors 4

At the end, one block: the status (and its reason), the numbers, what was saved:

    annotate finished in 19.2 s · gpt-4o-mini
      1,000 rows · 52.1 rows/s · p50 0.213 s · p95 1.02 s · 429s 5 · retries 12 · errors 4
      600 requests · saved 390 calls by dedupe, 10 by cache · tokens 52,000 in / 3,000 out
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from .fmt import fmt_cost, fmt_count, fmt_rate, fmt_s
from .snapshot import Snapshot, cost_text

SEP = " · "
INDENT = "  "
BAR_MIN, BAR_MAX = 10, 40  # the bar's width in characters
UTF_BAR = " ▏▎▍▌▋▊▉█"  # tqdm.std.Bar.UTF and .ASCII
ASCII_BAR = " 123456789#"

Fields = dict[str, tuple[str, ...]]  # name -> forms, fullest first


def fit(fields: Fields, order: Sequence[str], width: int, prefix: str = "") -> str:
    """`prefix` and the fields joined by ` · ` in at most `width` columns.

    Each name in `order` moves that field one form shorter, until the line fits. If it
    still does not, fields are dropped from the end; only a single field wider than the
    whole line (a terminal a few columns wide) is cut.
    """
    step = dict.fromkeys(fields, 0)

    def parts() -> list[str]:
        chosen = (forms[min(step[k], len(forms) - 1)] for k, forms in fields.items())
        return [p for p in chosen if p]

    def line(shown: list[str]) -> str:
        return prefix + SEP.join(shown)

    for name in order:
        if len(line(parts())) <= width:
            break
        if name in step:  # a field this line may not have (ttft, cost)
            step[name] += 1
    shown = parts()
    while len(shown) > 1 and len(line(shown)) > width:
        shown.pop()
    return line(shown)[:max(width, 0)]


def draw_bar(fraction: float, length: int, charset: str = UTF_BAR) -> str:
    """A bar of `length` characters, `fraction` of it filled (tqdm's `Bar`)."""
    from tqdm.std import Bar

    return str(format(Bar(max(0.0, min(1.0, fraction)), default_len=length, charset=charset),
                      ""))


def _n(n: int, word: str) -> str:
    """`1 row`, `1,000 rows`."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _pair(a: str, b: str) -> str:
    """`0.213/1.02 s` from `0.213 s` and `1.02 s`."""
    return f"{a[:-2]}/{b}" if a.endswith(" s") and b.endswith(" s") else f"{a}/{b}"


def _counter(label: str, n: int) -> tuple[str, ...]:
    text = f"{label} {n:,}"
    return (text,) if n else (text, "")  # a zero tells little: it goes first


def _latency(s: Snapshot) -> Fields:
    fields: Fields = {"latency": ("p50/p95 —", "")}
    if s.p50 is not None and s.p95 is not None:
        p50, p95 = fmt_s(s.p50), fmt_s(s.p95)
        fields["latency"] = (f"p50 {p50} · p95 {p95}", f"p50/p95 {_pair(p50, p95)}",
                             f"p95 {p95}", "")
    if s.ttft_p50 is not None:
        ttft = fmt_s(s.ttft_p50)
        fields["ttft"] = (f"first token {ttft}", f"ttft {ttft}", "")
    return fields


def _trouble(s: Snapshot) -> Fields:
    return {"429s": _counter("429s", s.rate_limited), "retries": _counter("retries", s.retries),
            "errors": _counter("errors", s.errors)}


ZEROS = ("429s", "retries", "errors")
DETAIL_ORDER = (*ZEROS, "ttft", "latency", "ttft", "flight", "latency", "flight", "cost",
                "latency")
PROGRESS_ORDER = ("rate", "rows", "rate", "eta")
ONE_LINE_ORDER = (*DETAIL_ORDER, "rate", "rows")  # then the details go, from the end


def detail_fields(s: Snapshot) -> Fields:
    flight = f"in flight {s.in_flight:,}"
    fields: Fields = {"flight": (f"{flight}/{s.window:,}", flight, "") if s.window
                      else (flight, "")}
    fields.update(_latency(s))
    fields.update(_trouble(s))
    if s.cost is not None:
        fields["cost"] = (cost_text(s), fmt_cost(s.cost), "")
    return fields


def progress_fields(s: Snapshot) -> Fields:
    rows = f"{s.done:,}/{s.rows:,}"
    rate = fmt_rate(s.rate)
    eta = "0 s" if s.done >= s.rows else fmt_s(s.eta)
    return {"rows": (f"{rows} rows", rows), "rate": (f"{rate} rows/s", f"{rate}/s", ""),
            "eta": (f"ETA {eta}", "")}


def bar_line(s: Snapshot, fields: Fields, order: Sequence[str], width: int,
             charset: str = UTF_BAR) -> str:
    """`annotate  43% |████▌     | ` and the fields; the bar takes the room left over."""
    head = f"annotate {100 * s.fraction:3.0f}% "
    text = fit(fields, order, width - len(head) - BAR_MIN - 3)
    length = min(BAR_MAX, width - len(head) - len(text) - 3)
    if not text or length < BAR_MIN:  # too narrow for a bar: the numbers alone
        return head + fit(fields, order, width - len(head))
    return f"{head}|{draw_bar(s.fraction, length, charset)}| {text}"


def live_lines(s: Snapshot, width: int, *, two_lines: bool = True,
               charset: str = UTF_BAR) -> list[str]:
    """While running: the bar line and, below it, the details (or all on one line)."""
    progress, details = progress_fields(s), detail_fields(s)
    if not two_lines:
        return [bar_line(s, {**progress, **details}, ONE_LINE_ORDER, width, charset)]
    return [bar_line(s, progress, PROGRESS_ORDER, width, charset),
            fit(details, DETAIL_ORDER, width, INDENT)]


def _saved(s: Snapshot) -> tuple[str, ...]:
    counts = [(s.saved_dedupe, "dedupe"), (s.saved_cache, "cache")]
    if s.saved_semantic:
        counts.append((s.saved_semantic, "semantic cache"))
    (first, how), rest = counts[0], counts[1:]
    full = ", ".join([f"{_n(first, 'call')} by {how}", *(f"{n:,} by {w}" for n, w in rest)])
    short = " + ".join(f"{n:,} {w.split()[0]}" for n, w in counts)
    total = _n(sum(n for n, _ in counts), "call")
    return (f"saved {full}", f"saved {short}", f"saved {total}", "")


def _tokens(s: Snapshot) -> tuple[str, ...]:
    p, c = s.prompt_tokens, s.completion_tokens
    return (f"tokens {p:,} in / {c:,} out", f"tokens {fmt_count(p)} in / {fmt_count(c)} out",
            f"{fmt_count(p + c)} tokens", "")


def final_block(s: Snapshot, width: int) -> list[str]:
    """The lines a run leaves: status and reason, the numbers, what was saved."""
    head = f"annotate {s.status} in {fmt_s(s.elapsed)}"
    lines = [fit({"head": (head,), "model": (s.model, "")}, ("model",), width)]
    if s.message:
        lines += textwrap.wrap(s.message, max(width, len(INDENT) + 1), initial_indent=INDENT,
                               subsequent_indent=INDENT, break_on_hyphens=False)
    rows = _n(s.done, "row") if s.done == s.rows else f"{s.done:,}/{_n(s.rows, 'row')}"
    numbers: Fields = {"rows": (rows,),
                       "rate": (f"{fmt_rate(s.rate)} rows/s", f"{fmt_rate(s.rate)}/s", "")}
    numbers.update(_latency(s))
    numbers.update(_trouble(s))
    lines.append(fit(numbers, (*ZEROS, "ttft", "latency", "ttft", "rate", "latency", "rate",
                               "latency"), width, INDENT))
    saved: Fields = {"requests": (_n(s.requests, "request"),), "saved": _saved(s),
                     "tokens": _tokens(s)}
    if s.cost is not None:
        saved["cost"] = (cost_text(s), fmt_cost(s.cost))
    lines.append(fit(saved, ("saved", "tokens", "saved", "tokens", "saved", "tokens"), width,
                     INDENT))
    return lines
