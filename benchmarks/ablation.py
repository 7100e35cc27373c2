"""Switches for control runs: the package with one of its mechanisms off, in a child
process of its own (never in the package itself)."""

from __future__ import annotations


def timeout_guard_off() -> None:
    """The limiter without its timeout guard: no cap from the timeout, no ghosts."""
    from pandas_llm_annotate.ratelimit.timeout_guard import TimeoutGuard

    TimeoutGuard.cap = lambda self: None  # type: ignore[method-assign]
    TimeoutGuard.ghosts = lambda self, now: 0  # type: ignore[method-assign]
