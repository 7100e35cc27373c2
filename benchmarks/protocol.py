"""What the runner and a contender process say to each other. Standard library only.

The runner writes a JSON spec to a file and starts ``python -m benchmarks.contenders.X
SPEC``; the contender does its work and prints one line ``BENCH_RESULT {json}`` on
stdout (anything else it prints is ignored).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

RESULT_PREFIX = "BENCH_RESULT "


class Spec(TypedDict, total=False):
    """One contender run."""

    base_url: str  # the simulator's /v1 root
    model: str
    texts_path: str  # JSON list of the rows' texts
    generate: dict[str, int]  # or {"distinct": N, "rows": M}: texts built in the child
    labels: list[str]
    prompt: str
    system: str  # the system message every contender sends (the package's own)
    max_tokens: int
    response_format: dict[str, Any]  # the answer format the package sends (a JSON schema)
    options: dict[str, Any]  # contender-specific


class Result(TypedDict, total=False):
    """What a contender reports."""

    wall_s: float  # the labelling call only: imports and data loading excluded
    answers: list[str | None]  # one per row, None where the row got nothing
    retries: int | None  # client-side retries where the client tells, else None
    rows_lost: int  # counted by the contender itself when it does not send answers
    info: dict[str, Any]


def load_spec(argv: list[str] | None = None) -> Spec:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0], encoding="utf-8") as f:
        spec: Spec = json.load(f)
    return spec


def load_texts(spec: Spec) -> list[str]:
    """The rows' texts: from ``texts_path``, or generated (see `generated_texts`)."""
    if "texts_path" in spec:
        with open(spec["texts_path"], encoding="utf-8") as f:
            texts: list[str] = json.load(f)
        return texts
    gen = spec["generate"]
    return generated_texts(gen["distinct"], gen["rows"])


BASE_TEXTS = (
    "I lost my card", "where is my new card", "I want a refund for a double charge",
    "how do I delete my account", "what exchange rate do you use", "my transfer failed",
    "how do I top up with a bank transfer", "my pin is blocked after three tries",
)


def generated_texts(distinct: int, rows: int) -> list[str]:
    """``rows`` texts of which ``distinct`` differ, the same on every call: text ``j``
    is a banking phrase with a reference number, row ``r`` has text ``r % distinct``."""
    uniq = [f"{BASE_TEXTS[j % len(BASE_TEXTS)]} (ref {j})" for j in range(distinct)]
    return [uniq[r % distinct] for r in range(rows)]


def emit(result: Result) -> None:
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> Result | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: Result = json.loads(line[len(RESULT_PREFIX):])
            return result
    return None


def maxrss_mb() -> float:
    """``ru_maxrss`` (Linux: KiB). Careful: Linux carries the spawning parent's peak
    across fork + exec, so in a child it never reads below the parent's RSS."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def current_rss_mb() -> float | None:
    """RSS now (VmRSS)."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float | None:
    """Peak RSS of this process's own memory since it started (VmHWM): unlike
    ``ru_maxrss`` it does not inherit the parent's peak."""
    return _status_mb("VmHWM")


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed wall time in s."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start


def valid(answer: object, labels: set[str]) -> bool:
    return isinstance(answer, str) and answer.strip() in labels
