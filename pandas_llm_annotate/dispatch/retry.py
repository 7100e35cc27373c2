"""Retry policy: how long to back off, and which errors stop the whole run."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from ..errors import (
    APIError,
    AuthenticationError,
    ConnectError,
    NotFoundError,
    ReadTimeout,
    RedirectError,
    RequestError,
)

WAIT_HEADERS = ("retry-after-ms", "retry-after")


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


def duration(seconds: float) -> str:
    """`42 s`, `12 min`, `3.5 hours`, `11.6 days`."""
    for unit, size in (("days", 86400.0), ("hours", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:,.0f} s"


def _named(headers: Mapping[str, str]) -> str:
    lower = {k.lower(): v for k, v in headers.items()}
    said = [f"{name}: {lower[name][:64]}" for name in WAIT_HEADERS if name in lower]
    return f" ({', '.join(said)})" if said else " (its rate-limit headers)"


def wait_too_long(exc: APIError, asked: float, max_wait: float) -> APIError:
    """The error that ends a run whose server asks for a wait over `max_wait`: the same
    type, status and headers as `exc`, with a message that says what to do."""
    quota = " That is a quota (a daily limit, say), not pacing." if exc.status == 429 else ""
    message = (
        f"{str(exc).rstrip('.')}. The server asks to wait {duration(asked)}"
        f"{_named(exc.headers)} before the next request, more than max_wait={max_wait:g} s, "
        f"so the run stops here.{quota}"
        " The answers received so far are in the cache (unless cache=False), so rerunning "
        "the same call later asks only for what is missing; or pass "
        f"max_wait={math.ceil(asked) + 5} to wait it out."
    )
    return type(exc)(message, status=exc.status, body=exc.body, headers=exc.headers)


def never_answers(exc: ReadTimeout, timeouts: int) -> ReadTimeout:
    """The error that ends a run whose server has let `timeouts` requests time out and
    answered nothing at all: as for an unreachable server, retrying cannot help."""
    return ReadTimeout(
        f"{timeouts} requests in a row got no answer within the timeout, and the server "
        "has answered nothing in this run: it accepts connections but never answers. Check "
        "base_url and model, that the server is healthy (and has loaded the model), or "
        f"raise timeout= if it is only slow. The last: {exc}",
        elapsed=exc.elapsed,
    )
