"""The text bar's layout at 60, 80, 100 and 130 columns, rendered to a StringIO: every
line fits, no field is cut, and the end leaves one final block (the numbers once)."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import pytest

from pandas_llm_annotate.config import Settings
from pandas_llm_annotate.display import progress
from pandas_llm_annotate.display.snapshot import Meter, Snapshot, snapshot
from pandas_llm_annotate.display.text_bar import TextView
from pandas_llm_annotate.display.text_layout import SEP, final_block, fit, live_lines
from pandas_llm_annotate.report.metrics import Metrics

WIDTHS = (60, 80, 100, 130)
# Every field a line may show, whole: a part of a line between separators must match one.
FIELD = re.compile(
    r"(in flight \d+(/\d+)?|p50 \S+ s|p95 \S+ s|p50/p95 \S+ s|p50/p95 —|first token \S+ s"
    r"|ttft \S+ s|429s \d+|retries \d+|errors \d+|\$[\d,.]+|[\d,]+/[\d,]+( rows)?"
    r"|[\d,]+ rows?|[\d.,—]+ rows/s|[\d.,—]+/s|ETA .+ (s|min)|ETA —|[\d,]+ requests?"
    r"|saved .+|tokens [\d,.kM]+ in / [\d,.kM]+ out|[\d.,kM]+ tokens|sim-model)")
ANSI = re.compile(r"\x1b\[([AKJ])")


def metrics(**kw: Any) -> Metrics:
    m = Metrics(rows=1000, missing=10, distinct=600, pieces=600, cache_hits=50, rows_done=430,
                requests=300, retries=12, rate_limited=5, errors=9, in_flight=16, window=32,
                prompt_tokens=2_000_000, completion_tokens=100_000, model="gpt-4o-mini")
    m.latencies.extend([0.1, 0.2, 0.3, 1.02])
    m.started = time.perf_counter() - 8.3
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def meter() -> Meter:
    meter = Meter()
    meter.samples.extend([(0.0, 0), (8.3, 430)])  # 51.8 rows/s
    return meter


def running(**kw: Any) -> Snapshot:
    return snapshot(metrics(**kw), meter())


def ended(status: str, message: str = "", **kw: Any) -> Snapshot:
    m = metrics(**kw)
    m.finish(status, message)
    return snapshot(m, outcome=None)


SNAPSHOTS = {
    "trouble": lambda: running(),
    "calm": lambda: running(retries=0, rate_limited=0, errors=0, model="sim-model"),
    "first": lambda: snapshot(metrics(latencies=[], rows_done=0, requests=8, model="x")),
    "stream": lambda: running(ttfts=[0.05, 0.07]),
    "million": lambda: running(rows=1_000_000, rows_done=430_000, window=0, in_flight=512),
}
ENDS = {
    "finished": lambda: ended("finished", rows_done=1000),
    "interrupted": lambda: ended("interrupted", "interrupted, 430 rows saved in cache"),
    "failed": lambda: ended("failed", "Cannot connect to http://127.0.0.1:9/v1/chat/completions "
                            "(Connection refused). Check base_url and that the server runs. " * 2),
}


def parts(line: str) -> list[str]:
    return line.strip().split(SEP)


def assert_whole_fields(line: str) -> None:
    body = re.sub(r"^annotate +\d+% (\|[^|]*\| )?", "", line)
    for part in parts(body):
        assert FIELD.fullmatch(part), f"cut or unknown field {part!r} in {line!r}"


class Screen:
    """Just enough of a terminal for the escapes the bar writes: \\r, \\n, cursor up,
    clear to end of line and of screen; a line longer than the width wraps, as in a
    real terminal."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.lines = [""]
        self.row = self.col = 0

    def feed(self, text: str) -> None:
        for token in re.split(r"(\x1b\[[AKJ]|\r|\n)", text):
            if token == "\r":
                self.col = 0
            elif token == "\n":
                self.row, self.col = self.row + 1, 0
            elif token == "\x1b[A":
                self.row = max(0, self.row - 1)
            elif token in ("\x1b[K", "\x1b[J"):
                self.lines[self.row] = self.lines[self.row][: self.col]
                if token == "\x1b[J":
                    del self.lines[self.row + 1:]
            else:
                for ch in token:
                    if self.col == self.width:  # autowrap
                        self.row, self.col = self.row + 1, 0
                    self._put(ch)
            while len(self.lines) <= self.row:
                self.lines.append("")

    def _put(self, ch: str) -> None:
        while len(self.lines) <= self.row:
            self.lines.append("")
        line = self.lines[self.row].ljust(self.col)
        self.lines[self.row] = line[: self.col] + ch + line[self.col + 1:]
        self.col += 1

    def text(self) -> list[str]:
        return [line.rstrip() for line in self.lines if line.strip()]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(SNAPSHOTS))
def test_live_lines_fit_and_keep_fields_whole(width: int, name: str) -> None:
    s = SNAPSHOTS[name]()
    for two in (True, False):
        lines = live_lines(s, width - 1, two_lines=two)
        assert len(lines) == (2 if two else 1)
        for line in lines:
            assert len(line) <= width - 1, line
            assert_whole_fields(line)
        assert re.match(r"annotate +\d+% \|[ ▏▎▍▌▋▊▉█]{10,40}\| ", lines[0]), lines[0]
        assert ", " not in lines[0]  # tqdm's stray postfix comma


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(ENDS))
def test_final_block_fits(width: int, name: str) -> None:
    s = ENDS[name]()
    block = final_block(s, width - 1)
    assert block[0].startswith(f"annotate {name} in ")
    assert all(len(line) <= width - 1 for line in block), block
    numbers = [line for line in block if "requests" in line or " rows" in line]
    for line in numbers:
        if "saved in cache" not in line:
            assert_whole_fields(line)
    assert sum("requests" in line for line in block) == 1
    if s.message:  # the reason, whole, wrapped under the status line
        words = " ".join(line.strip() for line in block[1:-2]).split()
        assert words == s.message.split()


def test_80_columns_keep_the_signals_of_trouble() -> None:
    """At 80 columns the issue saw p95, 429s and retries cut off."""
    bar, details = live_lines(running(), 79)
    assert "430/1,000 rows" in bar and "ETA" in bar and "rows/s" in bar
    for field in ("p95 0.912 s", "429s 5", "retries 12", "errors 4", "$0.3600"):
        assert field in details
    assert "in flight 16" in details


def test_130_columns_show_everything_and_a_real_bar() -> None:
    """At 130 columns the issue saw a bar one character wide."""
    bar, details = live_lines(running(), 129)
    assert len(re.search(r"\|(.*)\|", bar).group(1)) == 40  # type: ignore[union-attr]
    assert details.strip() == ("in flight 16/32 · p50 0.250 s · p95 0.912 s · 429s 5 · "
                               "retries 12 · errors 4 · $0.3600")


def test_60_columns_drop_in_a_fixed_order() -> None:
    bar, details = live_lines(running(), 59)
    assert bar.endswith("| 430/1,000 · 51.8/s · ETA 11.0 s")
    assert details.strip() == "p95 0.912 s · 429s 5 · retries 12 · errors 4 · $0.3600"
    calm = live_lines(SNAPSHOTS["calm"](), 59)[1]
    assert calm.strip() == "in flight 16/32 · p50 0.250 s · p95 0.912 s · errors 0"


def test_fit_shrinks_in_order_then_drops_from_the_end() -> None:
    fields = {"a": ("alpha", "a"), "b": ("beta", ""), "c": ("gamma",)}
    assert fit(fields, ("b", "a"), 100) == "alpha · beta · gamma"
    assert fit(fields, ("b", "a"), 14) == "alpha · gamma"
    assert fit(fields, ("b", "a"), 9) == "a · gamma"
    assert fit(fields, ("b", "a"), 5) == "a"
    assert fit(fields, (), 3) == "alp"  # a lone field wider than the line


@pytest.mark.parametrize("width", WIDTHS)
def test_terminal_shows_two_live_lines_then_only_the_final_block(width: int) -> None:
    out = io.StringIO()
    view = TextView(out, width=width, two_lines=True)
    screen = Screen(width)
    for done in (100, 430, 900):
        view.draw(running(rows_done=done))
        screen.feed(out.getvalue())
        out.seek(0), out.truncate()
        assert len(screen.text()) == 2, screen.text()
        assert screen.text()[0].startswith("annotate ")
    final = ended("finished", rows_done=1000)
    view.close(final)
    screen.feed(out.getvalue())
    assert screen.text() == final_block(final, width - 1)
    assert max(map(len, screen.lines)) <= width - 1


@pytest.mark.parametrize("width", WIDTHS)
def test_a_stream_that_is_no_terminal_gets_one_line_redrawn(width: int) -> None:
    out = io.StringIO()
    view = TextView(out, width=width)
    assert not view.two_lines
    view.draw(running(rows_done=430))
    view.draw(running(rows_done=431))
    final = ended("interrupted", "interrupted, 431 rows saved in cache", rows_done=431)
    view.close(final)
    text = out.getvalue()
    assert not ANSI.search(text)
    *live, last = text.split("\r")
    assert all(len(line) <= width - 1 for line in live)
    assert [line.rstrip() for line in last.splitlines()] == final_block(final, width - 1)
    assert text.count("saved in cache") == 1


def test_a_stream_without_unicode_gets_ascii() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    view = TextView(out, width=80)
    view.draw(running())
    view.close(ended("finished", rows_done=1000))
    text = raw.getvalue().decode("ascii")
    assert re.search(r"\|#+\d? +\| ", text) and " | " in text


def test_summary_mode_writes_only_the_final_block(monkeypatch: pytest.MonkeyPatch) -> None:
    Settings(model="m", base_url="http://127.0.0.1:9/v1", progress="summary").check()
    assert progress.choose("summary") == "summary"
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    view = progress.make_view("summary", Metrics(rows=3))
    assert isinstance(view, TextView)
    view.draw(running())
    assert out.getvalue() == ""
    final = ended("finished", rows_done=1000)
    view.close(final)
    assert out.getvalue().splitlines() == final_block(final, view.columns())
