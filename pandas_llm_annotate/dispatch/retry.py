"""Retry policy: how long to back off, and which errors stop the whole run."""

from __future__ import annotations

import random

from ..errors import (
    AuthenticationError,
    ConnectError,
    NotFoundError,
    RedirectError,
    RequestError,
)


def backoff(attempt: int, *, base: float = 0.5, cap: float = 20.0,
            rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    top = min(cap, base * (2 ** attempt))
    return (rng or random).uniform(0, top)


def is_fatal(exc: RequestError, *, any_success: bool) -> bool:
    """Errors that stop the whole run: a refused key, a wrong model or URL, and an
    unreachable server before any request has succeeded."""
    if isinstance(exc, (AuthenticationError, NotFoundError, RedirectError)):
        return True
    return isinstance(exc, ConnectError) and not any_success
