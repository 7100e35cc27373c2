"""Rate-limit headers: pure parsing, no I/O. Every value is validated; a value that is
not a number, a duration or a date is ignored (None)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_GO_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration such as `6m0s`, `1.2s`, `12ms`; None if it is not one."""
    text = text.strip()
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _GO_UNIT[u] for n, u in parts)


def reset_seconds(value: str, now_epoch: float) -> float | None:
    """A reset header: a Go duration, plain seconds, or an RFC 3339 date."""
    secs = go_duration(value)
    if secs is not None:
        return secs
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return max(0.0, when.timestamp() - now_epoch)
    except ValueError:
        return None


def retry_after(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, then `retry-after`
    (seconds or an HTTP date). None when it says nothing usable."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_epoch)
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Quota:
    """One dimension's limit as a server reported it."""

    per_minute: float
    remaining: float | None
    reset_s: float | None


def read_quotas(headers: Mapping[str, str], now_epoch: float) -> dict[str, Quota]:
    """`{"requests": Quota, "tokens": Quota}` from OpenAI or Anthropic headers."""
    lower = {k.lower(): v for k, v in headers.items()}
    found: dict[str, Quota] = {}
    for dim in ("requests", "tokens"):
        for limit, remaining, reset in (
            (f"x-ratelimit-limit-{dim}", f"x-ratelimit-remaining-{dim}",
             f"x-ratelimit-reset-{dim}"),
            (f"anthropic-ratelimit-{dim}-limit", f"anthropic-ratelimit-{dim}-remaining",
             f"anthropic-ratelimit-{dim}-reset"),
        ):
            if limit not in lower:
                continue
            try:
                per_minute = float(lower[limit])
                left = float(lower[remaining]) if remaining in lower else None
            except ValueError:
                continue
            when = reset_seconds(lower[reset], now_epoch) if reset in lower else None
            if per_minute > 0:
                found[dim] = Quota(per_minute, left, when)
            break
    return found
