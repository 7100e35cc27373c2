"""The text view: a live bar on stderr, and the one final block it leaves.

In a terminal, the bar line and a line of details are redrawn in place (ANSI cursor
up and clear-to-end-of-line) at the terminal's width, read at every draw. Where the
stream is no terminal (a notebook without ipywidgets, a log with `progress=True`),
one line is redrawn after a carriage return. When the run ends, the live lines give
way to the final block (`text_layout.final_block`): the numbers are printed once.
With `live=False` (`progress="summary"`) only that block is written.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from .snapshot import Snapshot
from .text_layout import ASCII_BAR, UTF_BAR, final_block, live_lines

CLEAR_LINE = "\x1b[K"
CLEAR_DOWN = "\x1b[J"
UP = "\x1b[A"
ASCII_TEXT = str.maketrans({"·": "|", "—": "-"})  # for streams that cannot encode them


def terminal_width(file: Any) -> int:
    """Columns of the terminal `file` writes to; else $COLUMNS, stdout's, or 80."""
    try:
        columns = os.get_terminal_size(file.fileno()).columns
    except (AttributeError, ValueError, OSError):  # no file descriptor, or no terminal
        columns = 0
    return columns or shutil.get_terminal_size().columns


def _isatty(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _encodes(file: Any, text: str) -> bool:
    try:
        text.encode(getattr(file, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


class TextView:
    """Draws snapshots on `file` (stderr). `width` fixes the columns (else the terminal's,
    at each draw); `two_lines` the redraw in place with ANSI (else: when `file` is a
    terminal, and not Windows' console)."""

    def __init__(self, file: Any = None, *, width: int | None = None, live: bool = True,
                 two_lines: bool | None = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.width = width
        self.live = live
        if two_lines is None:
            two_lines = _isatty(self.file) and os.name != "nt"
        self.two_lines = two_lines
        self.plain = not _encodes(self.file, UTF_BAR + "·—")
        self.shown = 0  # terminal: live lines on screen; else the length of the last line

    def columns(self) -> int:
        """Room for a line: one column short of the width, so no terminal wraps it."""
        return max((self.width or terminal_width(self.file)) - 1, 1)

    def _write(self, text: str) -> None:
        self.file.write(text.translate(ASCII_TEXT) if self.plain else text)
        self.file.flush()

    def _put(self, lines: list[str]) -> str:
        """Text that replaces the live lines on screen with `lines`."""
        if self.two_lines:
            back = "\r" + UP * (self.shown - 1) if self.shown else "\r"
            return back + "\n".join(line + CLEAR_LINE for line in lines)
        first = lines[0].ljust(self.shown) if self.shown else lines[0]
        return "\r" * bool(self.shown) + "\n".join([first, *lines[1:]])

    def draw(self, s: Snapshot) -> None:
        if not self.live:
            return
        charset = ASCII_BAR if self.plain else UTF_BAR
        lines = live_lines(s, self.columns(), two_lines=self.two_lines, charset=charset)
        self._write(self._put(lines))
        self.shown = len(lines) if self.two_lines else len(lines[0])

    def close(self, s: Snapshot) -> None:
        self._write(self._put(final_block(s, self.columns())) + "\n"
                    + (CLEAR_DOWN if self.two_lines else ""))
        self.shown = 0
