"""Formatters shared by every view (text bar, panel, HTML report, CLI): a leaf module."""

from __future__ import annotations

import math


def fmt_s(seconds: float | None) -> str:
    """`0.213 s`, `12.3 s`, `4 min 05 s`, `1 h 02 min`; `—` for unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 10:
        return f"{seconds:.3f} s" if seconds < 1 else f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def fmt_rate(rate: float | None) -> str:
    if rate is None:
        return "—"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"


def fmt_cost(cost: float | None) -> str:
    if cost is None:
        return "—"
    return f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"


def fmt_count(n: int) -> str:
    """`950`, `9,500`, `95.0k`, `950k`, `9.5M`: a count in at most 6 characters."""
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n / 1000:.1f}k" if n < 100_000 else f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M" if n < 100_000_000 else f"{n // 1_000_000}M"
