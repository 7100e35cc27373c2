"""One run's own limits on top of the shared limiter: its `rpm`, `tpm` and
`max_concurrency`. Pure policy, the time is given (`now`).

A run asks both: the tighter of the run's and the shared limit holds. The run's
limits end with it; what the server taught (the shared `Limiter`) stays for the
next run against the same server, key and model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import TracebackType

from .bucket import Bucket
from .limiter import DEFAULT_BURST_S, Limiter


class RunLimits:
    """The limiter a run's scheduler talks to; use it as a context manager around
    the run (`with limits:`) so the shared limiter knows the run's cap."""

    def __init__(self, shared: Limiter, *, max_concurrency: int, rpm: float | None = None,
                 tpm: float | None = None, timeout: float | None = None, now: float = 0.0) -> None:
        self.shared = shared
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.requests = None if not rpm else Bucket.per_minute(rpm, DEFAULT_BURST_S, now)
        self.tokens = None if not tpm else Bucket.per_minute(tpm, DEFAULT_BURST_S, now)
        self.in_flight = 0

    def __enter__(self) -> RunLimits:
        self.shared.open_run(self.max_concurrency, timeout=self.timeout)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shared.close_run(self.max_concurrency)

    @property
    def paced(self) -> bool:
        """The run gave its own rate: no probe before the server's limits are known."""
        return self.requests is not None or self.tokens is not None

    @property
    def token_capacity(self) -> float | None:
        """The tighter token bucket's depth, when one is known."""
        depths = [b.capacity for b in (self.tokens, self.shared.tokens) if b is not None]
        return min(depths) if depths else None

    @property
    def limit(self) -> int:
        return min(self.max_concurrency, self.shared.limit_for(paced=self.paced))

    def cost(self, prompt_estimate: int, max_tokens: int) -> float:
        return self.shared.cost(prompt_estimate, max_tokens)

    def acquire(self, cost: float, now: float) -> float:
        """0.0 if the request may go now (counted and charged here and in the shared
        limiter); else the seconds to wait (`math.inf`: until a release)."""
        if self.in_flight >= self.max_concurrency:
            return math.inf
        own = [(b, a) for b, a in ((self.requests, 1.0), (self.tokens, cost))
               if b is not None] if self.paced else []  # most runs have no rate of their own
        if own and (wait := max(b.wait(a, now) for b, a in own)) > 0:
            return wait
        wait = self.shared.acquire(cost, now, paced=bool(own))
        if wait == 0:
            for bucket, amount in own:
                bucket.take(amount)
            self.in_flight += 1
        return wait

    def succeeded(self, now: float, headers: Mapping[str, str], now_epoch: float, *,
                  prompt_estimate: int = 0, prompt_tokens: int | None = None,
                  latency: float | None = None) -> None:
        self.in_flight -= 1
        self.shared.succeeded(now, headers, now_epoch, prompt_estimate=prompt_estimate,
                              prompt_tokens=prompt_tokens, latency=latency)

    @property
    def probing(self) -> bool:
        """No response has told the shared limiter the limits, and this run does not pace
        itself: its first round is held to the probe."""
        return self.shared.probing(self.paced)

    def admitted(self, now: float, headers: Mapping[str, str], now_epoch: float) -> bool:
        return self.shared.admitted(now, headers, now_epoch)

    def failed(self, now: float, *, overload: bool, fault: bool = False,
               timed_out: float | None = None) -> None:
        self.in_flight -= 1
        self.shared.failed(now, overload=overload, fault=fault, timed_out=timed_out)

    def overloaded(self, now: float) -> bool:
        return self.shared.overloaded(now)

    def rate_limited(self, now: float, headers: Mapping[str, str], now_epoch: float, *,
                     max_wait: float = math.inf) -> float:
        self.in_flight -= 1
        return self.shared.rate_limited(now, headers, now_epoch, max_wait=max_wait)
