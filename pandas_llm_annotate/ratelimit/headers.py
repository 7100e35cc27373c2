"""Rate-limit headers: pure parsing, no I/O. Servers can be hostile, so every value is
validated: what is not a number, a duration or a date is ignored (None), and what is
absurd is ignored or clamped as each function says. Waits are returned as the server
named them, finite, in [0, MAX_WAIT_S]; whether one is too long is the caller's call."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_GO_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
MAX_HEADER_CHARS = 64  # a longer value is not a number, a duration or a date
MIN_PER_MINUTE = 1.0  # a limit under one per minute is not a rate we can pace to
MAX_WAIT_S = 365 * 86400.0  # a named wait longer than a year (or `inf`) is read as a year


def number(text: str) -> float | None:
    """A finite float, or None (`nan`, `inf`, overlong or not a number)."""
    if len(text) > MAX_HEADER_CHARS:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration such as `6m0s`, `1.2s`, `12ms`; None if it is not one."""
    text = text.strip()
    if len(text) > MAX_HEADER_CHARS:
        return None
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    secs = sum(float(n) * _GO_UNIT[u] for n, u in parts)
    return secs if math.isfinite(secs) else None


def _seconds_until(when: datetime, now_epoch: float) -> float | None:
    try:
        return max(0.0, when.timestamp() - now_epoch)  # a date in the past: now
    except (OverflowError, OSError, ValueError):
        return None


def _wait(text: str | None, scale: float = 1.0) -> float | None:
    """A named wait in seconds (`scale`: seconds per unit): a number >= 0, `inf` and
    anything over MAX_WAIT_S read as MAX_WAIT_S; negative or `nan`: None."""
    if text is None or len(text) > MAX_HEADER_CHARS:
        return None
    try:
        value = float(text) * scale
    except ValueError:
        return None
    if math.isnan(value) or value < 0:
        return None
    return min(value, MAX_WAIT_S)


def reset_seconds(value: str, now_epoch: float) -> float | None:
    """A reset header: a Go duration, plain seconds, or an RFC 3339 date. A negative or
    non-finite number is ignored (None); a date in the past is 0."""
    secs = go_duration(value)
    if secs is not None:
        return secs
    plain = number(value)
    if plain is not None:
        return plain if plain >= 0 else None
    if len(value) > MAX_HEADER_CHARS:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return _seconds_until(when, now_epoch)


def retry_after(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, then `retry-after`
    (seconds or an HTTP date). None when it says nothing usable: a negative or `nan`
    value is ignored. `inf`, a far date and anything over MAX_WAIT_S give MAX_WAIT_S; a
    date in the past gives 0. Zero is returned as 0: the limiter floors the pause."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = _wait(lower.get("retry-after-ms"), 1e-3)
    if ms is not None:
        return ms
    value = lower.get("retry-after")
    if value is None:
        return None
    secs = _wait(value)
    if secs is not None or len(value) > MAX_HEADER_CHARS:
        return secs
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    secs = _seconds_until(when, now_epoch)
    return None if secs is None else min(secs, MAX_WAIT_S)


@dataclass(frozen=True)
class Quota:
    """One dimension's limit as a server reported it."""

    per_minute: float
    remaining: float | None
    reset_s: float | None


# Per dimension: the (limit, remaining, reset) header names of OpenAI, then Anthropic.
_NAMES = {dim: ((f"x-ratelimit-limit-{dim}", f"x-ratelimit-remaining-{dim}",
                 f"x-ratelimit-reset-{dim}"),
                (f"anthropic-ratelimit-{dim}-limit", f"anthropic-ratelimit-{dim}-remaining",
                 f"anthropic-ratelimit-{dim}-reset"))
          for dim in ("requests", "tokens")}


def read_quotas(headers: Mapping[str, str], now_epoch: float) -> dict[str, Quota]:
    """`{"requests": Quota, "tokens": Quota}` from OpenAI or Anthropic headers.

    A limit that is not finite or is under `MIN_PER_MINUTE` (0.001, 1e-300: no rate
    to pace to) drops that dimension. `remaining` is clamped to [0, limit] (a negative
    count means none left); one that is not a finite number is ignored (None), as is a
    reset that `reset_seconds` cannot read."""
    lower = {k.lower(): v for k, v in headers.items()}
    found: dict[str, Quota] = {}
    for dim, families in _NAMES.items():
        for limit, remaining, reset in families:
            if limit not in lower:
                continue
            per_minute = number(lower[limit])
            if per_minute is None or per_minute < MIN_PER_MINUTE:
                break
            left = number(lower[remaining]) if remaining in lower else None
            if left is not None:
                left = min(per_minute, max(0.0, left))
            when = reset_seconds(lower[reset], now_epoch) if reset in lower else None
            found[dim] = Quota(per_minute, left, when)
            break
    return found
