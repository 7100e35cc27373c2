"""Pure policy, no I/O: how fast to send, how many at once, when to retry.

Every method takes the current time as an argument (`now`, monotonic seconds;
`now_epoch` where a header names a wall-clock date), so tests drive it with a
fake clock instead of sleeping.

- Token buckets for requests and tokens, from `rpm=`/`tpm=` or learned from
  response headers (OpenAI `x-ratelimit-*`, Anthropic `anthropic-ratelimit-*`).
- A 429 pauses every sender until the reset the server names.
- An AIMD window bounds requests in flight: +1/window on success, halved on
  overload (503, 529, timeouts, dropped connections, 429 without headers).
- A timeout guard keeps a server's queue shorter than the request timeout, and
  counts a request that timed out as still on the server until it is likely done.
- Limiters are shared by every run in the process for the same server, key and
  model (`shared_limiter`), so two cells running at once do not double the rate.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

from .errors import (
    AuthenticationError,
    ConnectError,
    NotFoundError,
    RequestError,
)
from .guard import TimeoutGuard

PROBE_WINDOW = 32  # requests in flight before the first answer tells us the limits
DEFAULT_BURST_S = 1.0  # bucket depth assumed for user-given rpm/tpm
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
class Bucket:
    """A token bucket: holds at most `capacity`, refills `rate` per second."""

    capacity: float
    rate: float
    level: float
    stamp: float

    @classmethod
    def per_minute(cls, per_minute: float, burst_s: float, now: float) -> Bucket:
        rate = per_minute / 60.0
        capacity = max(1.0, rate * burst_s)
        return cls(capacity, rate, capacity, now)

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` fits (a cost above capacity waits for a full bucket)."""
        self.refill(now)
        missing = min(cost, self.capacity) - self.level
        return missing / self.rate if missing > 0 else 0.0

    def take(self, cost: float) -> None:
        self.level -= min(cost, self.capacity)


@dataclass
class Window:
    """Bound on requests in flight: AIMD on errors, and a cap from queueing.

    AIMD: +1/size per success, halved on overload. Queueing: a server that works
    through requests one (or a few) at a time answers slower, not with errors,
    as more wait. Rounds of answers are watched; when a round's median latency is
    over QUEUE_RATIO times the fastest answer ever seen (the service time with no
    queue), the server's useful parallelism is about rate × that fastest latency,
    and the window drops to twice that. The next round checks the drop: if
    throughput fell by more than 10 %, it is undone, and the signal stays quiet
    until the median latency grows half again past that round's.
    """

    cap: int
    size: float
    floor: float = 1.0
    cut_at: float = -math.inf
    cooldown_s: float = 1.0
    queue_cap: int | None = None  # from queueing; kept across runs on one server
    _round_start: float | None = None
    _latencies: list[float] = field(default_factory=list)
    _trial: tuple[int | None, float] | None = None  # (cap before a drop, rate then)
    fastest: float = math.inf  # the fastest answer seen from this server
    _undone_at: float = 0.0  # median latency of a round whose drop was undone

    QUEUE_RATIO = 3.0
    ROUND_ANSWERS = 16
    ROUND_S = 0.5

    def grow(self) -> None:
        self.size = min(float(self.cap), self.size + 1.0 / self.size)

    def cut(self, now: float) -> bool:
        """Halve, at most once per cooldown (one burst of errors is one signal)."""
        if now - self.cut_at < self.cooldown_s:
            return False
        self.size = max(self.floor, self.size / 2)
        self.cut_at = now
        return True

    @property
    def limit(self) -> int:
        cap = self.cap if self.queue_cap is None else min(self.cap, self.queue_cap)
        return max(1, min(int(self.size), cap))

    def observe(self, now: float, latency: float, in_flight: int) -> None:
        """One answer's latency; rounds start once the window is not over-full."""
        self.fastest = min(self.fastest, latency)
        if in_flight > self.limit:
            self._round_start = None  # still draining after a drop
            return
        if self._round_start is None:
            self._round_start, self._latencies = now, []
            return
        self._latencies.append(latency)
        elapsed = now - self._round_start
        if len(self._latencies) < self.ROUND_ANSWERS or elapsed < self.ROUND_S:
            return
        rate = len(self._latencies) / elapsed
        median = sorted(self._latencies)[len(self._latencies) // 2]
        self._round_start, self._latencies = now, []
        if self._trial is not None:
            before, old_rate = self._trial
            self._trial = None
            if rate < 0.9 * old_rate:
                self.queue_cap = before  # the drop cost throughput: undo it
                self._undone_at = median  # and stay quiet until latency grows well past it
            return
        if median > max(self.QUEUE_RATIO * self.fastest, 1.5 * self._undone_at):
            target = max(1, math.ceil(2 * rate * self.fastest))
            if target < self.limit:
                self._trial = (self.queue_cap, rate)
                self.queue_cap = target


@dataclass
class Limiter:
    """Admission control for one server + key + model. Thread-safe."""

    max_concurrency: int
    rpm: float | None = None
    tpm: float | None = None
    timeout: InitVar[float | None] = None  # the request timeout, kept by the guard
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self, timeout: float | None) -> None:
        self.window = Window(cap=self.max_concurrency, size=float(self.max_concurrency))
        self.requests: Bucket | None = None
        self.tokens: Bucket | None = None
        self.learned = False  # a response told us the limits (or that there are none)
        self.paused_until = 0.0
        self.in_flight = 0
        self.token_scale = 1.0  # actual prompt tokens / our estimate, learned from usage
        self._quiet_429s = 0
        self._guessed = False  # the requests bucket is our guess from headerless 429s
        self._recent: deque[float] = deque()  # times of recent successes
        self.guard = TimeoutGuard(timeout=timeout)
        self._lock = threading.Lock()
        self.set_limits(self.rpm, self.tpm, now=0.0)

    def set_limits(self, rpm: float | None, tpm: float | None, *, now: float) -> None:
        """User-given limits; they win over what headers say."""
        with self._lock:
            self.rpm, self.tpm = rpm, tpm
            if rpm:
                self.requests = Bucket.per_minute(rpm, DEFAULT_BURST_S, now)
            if tpm:
                self.tokens = Bucket.per_minute(tpm, DEFAULT_BURST_S, now)
            self.learned = self.learned or bool(rpm or tpm)

    def set_concurrency(self, cap: int, *, timeout: float | None = None) -> None:
        """A new run's cap and request timeout; an idle limiter also forgets an old
        run's window cuts."""
        with self._lock:
            self.guard.timeout = timeout
            self.max_concurrency = cap
            self.window.cap = cap
            idle = self.in_flight == 0
            if idle:
                self.guard.new_run()
            self.window.size = float(cap) if idle else min(self.window.size, float(cap))

    def cost(self, prompt_estimate: int, max_tokens: int) -> float:
        """Token cost charged before sending: scaled prompt estimate + max_tokens."""
        return prompt_estimate * self.token_scale + max_tokens

    @property
    def limit(self) -> int:
        """Requests allowed in flight now: the window, the probe, the timeout guard."""
        limit = self.window.limit if self.learned else min(PROBE_WINDOW, self.window.limit)
        guard = self.guard.cap()
        return limit if guard is None else min(limit, guard)

    def _busy(self, now: float) -> int:
        """Requests in flight, and timed-out ones the server is likely still working on."""
        return self.in_flight + self.guard.ghosts(now)

    def acquire(self, cost: float, now: float) -> float:
        """0.0 if a request of `cost` tokens may go now (it is counted in flight and
        charged); else the seconds to wait (`math.inf`: wait for a release)."""
        with self._lock:
            wait = max(0.0, self.paused_until - now)
            if wait == 0 and self._busy(now) >= self.limit:
                return math.inf
            for bucket, amount in ((self.requests, 1.0), (self.tokens, cost)):
                if bucket is not None:
                    wait = max(wait, bucket.wait(amount, now))
            if wait > 0:
                return wait
            for bucket, amount in ((self.requests, 1.0), (self.tokens, cost)):
                if bucket is not None:
                    bucket.take(amount)
            self.in_flight += 1
            return 0.0

    def succeeded(self, now: float, headers: Mapping[str, str], now_epoch: float, *,
                  prompt_estimate: int = 0, prompt_tokens: int | None = None,
                  latency: float | None = None) -> None:
        with self._lock:
            self.in_flight -= 1
            self.window.grow()
            if latency is not None:
                self.window.observe(now, latency, self.in_flight)
                self.guard.answered(now, latency, self._busy(now))
            self._quiet_429s = 0
            self._recent.append(now)
            if self._guessed and self.requests is not None:
                self.requests.refill(now)
                self.requests.rate += 1.0 / max(1.0, self.requests.rate)  # +1 req/s per second
            if prompt_tokens and prompt_estimate:
                ratio = prompt_tokens / prompt_estimate
                self.token_scale = 0.8 * self.token_scale + 0.2 * min(4.0, max(0.25, ratio))
            self._learn(headers, now, now_epoch)
            self.learned = True

    def failed(self, now: float, *, overload: bool, timed_out: float | None = None) -> None:
        """A request ended without an answer; `overload` errors halve the window;
        `timed_out`: it had waited that many seconds for an answer in vain."""
        with self._lock:
            self.in_flight -= 1
            if overload:
                self.window.cut(now)
            if timed_out is not None:
                self.guard.timed_out(now, timed_out, self._busy(now))

    def rate_limited(self, now: float, headers: Mapping[str, str], now_epoch: float) -> float:
        """A 429: pause every sender until the server's reset; returns the pause."""
        with self._lock:
            self.in_flight -= 1
            pause = retry_after(headers, now_epoch)
            quotas = self._learn(headers, now, now_epoch)
            for name, quota in quotas.items():
                bucket = self.requests if name == "requests" else self.tokens
                if bucket is not None and quota.remaining is not None:
                    bucket.level = min(bucket.level, quota.remaining)
            if pause is None and not quotas:
                # No hint at all: cut our guess of the rate; a new burst of 429s in a
                # row also pauses a little longer each time (capped at 5 s).
                if self._guess_rate(now):
                    self._quiet_429s += 1
                    pause = min(5.0, 0.25 * 2 ** (self._quiet_429s - 1)) * (1 + self.rng.random())
                else:
                    pause = 0.0
            if pause is None:
                pause = max((b.wait(1.0, now) for b in (self.requests, self.tokens) if b),
                            default=1.0)
            self.paused_until = max(self.paused_until, now + pause + self.rng.uniform(0, 0.02))
            self.learned = True
            return pause

    def _guess_rate(self, now: float) -> bool:
        """Multiplicative decrease of the request rate, once per cooldown: 3/4 of what
        the server just let through (answered in the last second, plus still in
        flight). A user-given rpm, or one learned from headers, is kept."""
        if self.rpm or (self.requests is not None and not self._guessed):
            return False
        if now - self.window.cut_at < self.window.cooldown_s:
            return False
        self.window.cut_at = now
        while self._recent and self._recent[0] < now - 1.0:
            self._recent.popleft()
        seen = float(len(self._recent) + self.in_flight)
        if self.requests is not None:
            seen = min(seen, self.requests.rate)
        rate = max(0.5, 0.75 * seen)
        self.requests = Bucket(max(1.0, rate * 0.25), rate, 0.0, now)
        self._guessed = True
        return True

    def _learn(self, headers: Mapping[str, str], now: float, now_epoch: float) -> dict[str, Quota]:
        quotas = read_quotas(headers, now_epoch)
        for name, quota in quotas.items():
            if (self.rpm if name == "requests" else self.tpm):
                continue  # the user's number wins
            if name == "requests":
                self._guessed = False
            bucket = self.requests if name == "requests" else self.tokens
            rate = quota.per_minute / 60.0
            capacity = max(1.0, rate * DEFAULT_BURST_S)
            if quota.remaining is not None and quota.reset_s is not None:
                capacity = max(1.0, quota.remaining + quota.reset_s * rate)
            if bucket is None:
                # First news of this limit: what is left, less what we already sent.
                left = quota.remaining if quota.remaining is not None else capacity
                bucket = Bucket(capacity, rate, max(0.0, left - self.in_flight), now)
            else:
                bucket.refill(now)
                bucket.capacity, bucket.rate = capacity, rate
                bucket.level = min(bucket.level, capacity)
            if name == "requests":
                self.requests = bucket
            else:
                self.tokens = bucket
        return quotas


_shared: dict[tuple[str, str, str], Limiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(base_url: str, api_key: str | None, model: str, *, max_concurrency: int,
                   rpm: float | None, tpm: float | None, now: float,
                   timeout: float | None = None) -> Limiter:
    """The process-wide limiter for this server, key and model (the key only hashed)."""
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    key = (base_url, digest, model)
    with _shared_lock:
        limiter = _shared.get(key)
        if limiter is None:
            limiter = _shared[key] = Limiter(max_concurrency=max_concurrency, rpm=rpm, tpm=tpm,
                                             timeout=timeout)
            return limiter
    limiter.set_concurrency(max_concurrency, timeout=timeout)
    if (rpm, tpm) != (limiter.rpm, limiter.tpm) and (rpm or tpm):
        limiter.set_limits(rpm, tpm, now=now)
    return limiter
