"""The text bar in a real terminal: a script runs in tmux at 80 x 24 and the pane is read
while it runs and at the end. No line is wider than the terminal, the bar is redrawn in
place (one bar on screen, not a stack), and the end leaves the summary once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from helpers.child import child_env

from pandas_llm_annotate.simulator import serve

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None,
                       reason="tmux is not installed (apt-get install tmux): no terminal check"),
]

COLUMNS, LINES = 80, 24
BAR = re.compile(r"^annotate +\d+% \|")

SCRIPT = textwrap.dedent("""
    import pandas as pd
    import pandas_llm_annotate as pla
    from pandas_llm_annotate.simulator import serve

    texts = pd.Series([f"message number {i}: I lost my card" for i in range(300)])
    with serve(latency=0.02, seed=3) as sim:
        texts.llm.annotate(labels=["card_lost", "refund", "other"], model="sim-model",
                           base_url=sim.base_url, cache=False, max_concurrency=2,
                           progress=True)
""")


class Tmux:
    """A private tmux server (its own socket, no user config) with one session."""

    def __init__(self, socket: Path) -> None:
        self.base = ["tmux", "-S", str(socket), "-f", os.devnull]

    def __call__(self, *args: str) -> str:
        env = child_env()
        env.pop("TMUX", None)  # also when the tests themselves run inside tmux
        proc = subprocess.run([*self.base, *args], capture_output=True, text=True, env=env,
                              timeout=30, check=True)
        return proc.stdout

    def pane(self, history: bool = False) -> list[str]:
        """The pane's lines, wrapped lines joined (-J): a line wider than the terminal
        shows up as such."""
        extra = ["-S", "-", "-E", "-"] if history else []
        return self("capture-pane", "-p", "-J", "-t", "t", *extra).rstrip("\n").split("\n")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path / "tmux.sock")
    yield t
    subprocess.run([*t.base, "kill-server"], capture_output=True, timeout=30)


def run_in_terminal(tmux: Tmux, command: str) -> None:
    """Run `command` in the pane, then print its exit code. The pane's shell traps
    SIGINT so that Ctrl-C reaches the command (which gets the default action) and the
    shell lives on to print the code."""
    tmux("new-session", "-d", "-s", "t", "-x", str(COLUMNS), "-y", str(LINES),
         f"trap : INT; {command}; echo EXIT $?; sleep 600")


def wait_for(tmux: Tmux, seen: Callable[[list[str]], bool], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = tmux.pane()
        if seen(lines):
            return lines
        time.sleep(0.1)
    raise AssertionError("timed out; the pane shows:\n" + "\n".join(tmux.pane()))


def exited(lines: list[str]) -> bool:
    return any(line.startswith("EXIT ") for line in lines)


def test_the_bar_fits_80_columns_and_the_summary_shows_once(tmux: Tmux, tmp_path: Path) -> None:
    script = tmp_path / "annotate_300.py"
    script.write_text(SCRIPT)
    run_in_terminal(tmux, f"{sys.executable} {script}")

    def bar_with_answers(lines: list[str]) -> bool:
        return exited(lines) or any(BAR.match(line) and "ETA" in line and " 0%" not in line
                                    for line in lines)

    live = wait_for(tmux, bar_with_answers, 60)
    assert not exited(live), "the run ended before the bar was seen:\n" + "\n".join(live)
    later = wait_for(tmux, lambda lines: lines != live, 10)  # redrawn in place
    for screen in (live, later):
        shown = [line for line in screen if line.strip()]
        assert max(map(len, shown)) <= COLUMNS, "\n".join(shown)
        bars = [i for i, line in enumerate(shown) if BAR.match(line)]
        assert len(bars) == 1, "\n".join(shown)  # one bar, not a stack of redraws
        details = shown[bars[0] + 1]
        for field in ("in flight", "p50", "p95", "429s", "retries", "errors"):
            assert field in details, details

    wait_for(tmux, exited, 60)
    everything = [line for line in tmux.pane(history=True) if line.strip()]
    assert "EXIT 0" in everything, "\n".join(everything)
    assert max(map(len, everything)) <= COLUMNS, "\n".join(everything)
    text = "\n".join(everything)
    assert not any(BAR.match(line) for line in everything), text  # the bar gave way
    assert text.count("annotate finished in") == 1, text
    assert text.count("300 rows") == 1, text
    assert text.count("requests") == 1, text
    assert "Traceback" not in text


def test_ctrl_c_on_the_command_line_ends_with_the_block_and_one_line(
        tmux: Tmux, tmp_path: Path) -> None:
    texts = [f"terminal {i}: I lost my card" for i in range(200)]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "data.csv", index=False)
    with serve(latency=0.2, jitter=0.1, seed=4) as sim:
        run_in_terminal(tmux, f"cd {tmp_path} && {sys.executable} -m pandas_llm_annotate "
                              "annotate data.csv -c text -l card_lost,refund,other -o out.csv "
                              "--cache cache --max-concurrency 4 --model sim-model "
                              f"--base-url {sim.base_url}")
        wait_for(tmux, lambda lines: exited(lines) or any(
            BAR.match(line) and " 0%" not in line for line in lines), 60)
        tmux("send-keys", "-t", "t", "C-c")
        wait_for(tmux, exited, 30)
    everything = [line for line in tmux.pane(history=True) if line.strip()]
    text = "\n".join(everything)
    assert "EXIT 130" in everything, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert max(map(len, everything)) <= COLUMNS, text
    assert not any(BAR.match(line) for line in everything), text
    assert text.count("annotate interrupted in") == 1, text
    assert "the same command asks only for the rest" in " ".join(text.split()), text
    assert not (tmp_path / "out.csv").exists()
