"""Child processes that run this checkout's code (the command line, scripts in tmux)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from .checks import wait_for

ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def interruptible(script: str) -> str:
    """A child script (dedented) that a test interrupts: SIGINT gets Python's handler back
    first, since a background job (CI) may inherit it ignored; a terminal's Ctrl-C is not."""
    return ("import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
            + textwrap.dedent(script))


def start(args: list[str]) -> subprocess.Popen[str]:
    """`python *args` with text pipes for stdout and stderr."""
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def ctrl_c(child: subprocess.Popen[str], ready: Callable[[], bool],
           within: float = 60.0) -> tuple[str, str, float]:
    """Wait (at most `within` s) until `ready()` while the child still runs, send it
    SIGINT and wait for it to end: (stdout, stderr, seconds from the signal to its exit).
    The child is killed in any case."""
    try:
        wait_for(lambda: ready() or child.poll() is not None, within, "the child to be ready")
        assert child.poll() is None, child.communicate()
        child.send_signal(signal.SIGINT)
        pressed = time.monotonic()
        out, err = child.communicate(timeout=30)
        return out, err, time.monotonic() - pressed
    finally:
        child.kill()
