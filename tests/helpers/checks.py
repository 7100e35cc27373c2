"""Small checks shared by the tests: a closed port, everything an exception shows, the
last report, waiting for a condition."""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Callable

import pandas_llm_annotate as pla


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def error_text(exc: BaseException) -> str:
    """Everything a user could see of an exception: str, repr and the full traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def report() -> pla.Report:
    """The report of the last run in this thread."""
    rep = pla.last_report()
    assert rep is not None
    return rep


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` every 20 ms until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
