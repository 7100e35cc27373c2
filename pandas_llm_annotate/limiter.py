"""Pure policy, no I/O: when to retry, how long to wait, when the whole run must pause.

Every function takes the current time as an argument, so tests drive it with a
fake clock instead of sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from .errors import (
    AuthenticationError,
    ConnectError,
    NotFoundError,
    RateLimitError,
    RequestError,
)


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


def backoff(attempt: int, *, base: float = 0.5, cap: float = 20.0,
            rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    top = min(cap, base * (2 ** attempt))
    return (rng or random).uniform(0, top)


def is_fatal(exc: RequestError, *, any_success: bool) -> bool:
    """Errors that stop the whole run: a refused key, a wrong model or URL, and an
    unreachable server before any request has succeeded."""
    if isinstance(exc, (AuthenticationError, NotFoundError)):
        return True
    return isinstance(exc, ConnectError) and not any_success


@dataclass
class Gate:
    """A run-wide pause: after a 429, nobody sends until the time the server named.

    `wait(now)` says how long a sender must wait; `rate_limited(now, exc)` moves
    the gate forward and returns the pause it set.
    """

    open_at: float = 0.0
    default_pause: float = 1.0
    rng: random.Random = field(default_factory=random.Random)

    def wait(self, now: float) -> float:
        return max(0.0, self.open_at - now)

    def rate_limited(self, now: float, exc: RateLimitError, now_epoch: float) -> float:
        pause = retry_after(exc.headers, now_epoch)
        if pause is None:
            pause = self.default_pause * (1 + self.rng.random())
        # A little spread so the paused senders do not all fire at the same instant.
        self.open_at = max(self.open_at, now + pause + self.rng.uniform(0, 0.05))
        return pause
