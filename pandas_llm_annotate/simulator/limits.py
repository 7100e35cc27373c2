"""The simulated rate limits: two token buckets checked on arrival, OpenAI's
``x-ratelimit-*`` headers and the 429 answer."""

from __future__ import annotations

import math
import time

from aiohttp import web

from .buckets import TokenBucket, ceil_ms, go_duration
from .config import SimulatorConfig
from .stats import Stats
from .wire import error


def _per_minute(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


class RateLimits:
    """Requests and tokens per minute (either may be unlimited: None)."""

    def __init__(self, config: SimulatorConfig, stats: Stats) -> None:
        now = time.monotonic()
        self.requests = TokenBucket(config.rpm, config.burst, now) if config.rpm else None
        self.tokens = TokenBucket(config.tpm, config.burst, now) if config.tpm else None
        self.send_headers = config.rate_headers
        self.stats = stats

    def headers(self) -> dict[str, str]:
        """Current x-ratelimit-* headers (omitted for unlimited dimensions)."""
        headers: dict[str, str] = {}
        if not self.send_headers:
            return headers
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                headers[f"x-ratelimit-limit-{name}"] = _per_minute(bucket.per_minute)
                headers[f"x-ratelimit-remaining-{name}"] = str(int(bucket.level))
                headers[f"x-ratelimit-reset-{name}"] = go_duration(bucket.until_full())
        return headers

    def check(self, cost: int, model: str) -> tuple[web.Response | None, dict[str, str]]:
        """Check both buckets on arrival; take from both, or answer 429. Also the
        headers the answer carries."""
        rb, tb = self.requests, self.tokens
        if rb is None and tb is None:
            return None, {}
        now = time.monotonic()
        wait_r = wait_t = 0.0
        if rb is not None:
            rb.refill(now)
            wait_r = rb.shortfall(1)
        if tb is not None:
            tb.refill(now)
            wait_t = tb.shortfall(cost)
        if wait_r <= 0 and wait_t <= 0:
            if rb is not None:
                rb.take(1)
            if tb is not None:
                tb.take(cost)
            return None, self.headers()

        kind, bucket, asked = ("requests", rb, 1) if wait_r > 0 else ("tokens", tb, cost)
        assert bucket is not None
        wait = max(wait_r, wait_t)
        self.stats.rate_limited += 1
        self.stats.rate_limited_by[kind] += 1
        headers = self.headers()
        if self.send_headers:
            ms = ceil_ms(wait)
            headers["retry-after-ms"] = str(ms)
            headers["retry-after"] = str(max(1, math.ceil(ms / 1000)))
        unit = "RPM" if kind == "requests" else "TPM"
        used = int(bucket.capacity - bucket.level)
        message = (
            f"Rate limit reached for {model} on {kind} per min ({unit}): "
            f"Limit {_per_minute(bucket.per_minute)}, Used {used}, "
            f"Requested {asked}. Please try again in {go_duration(wait)}."
        )
        return error(429, message, kind, "rate_limit_exceeded", headers), headers
