"""The limiter: admission control for one server + key + model. Pure policy, no I/O.

Every method takes the current time as an argument (`now`, monotonic seconds;
`now_epoch` where a header names a wall-clock date), so tests drive it with a
fake clock instead of sleeping.

- Token buckets for requests and tokens, learned from response headers (OpenAI
  `x-ratelimit-*`, Anthropic `anthropic-ratelimit-*`; `headers.py`, `bucket.py`).
- Before a response has told the limits (the first round), at most PROBE_WINDOW
  requests are in flight, and a large one (a packed request) goes alone. The first
  success headers end it (`admitted`: a streamed answer's come at its first token).
- A 429 pauses every sender until the reset the server names, at least MIN_PAUSE,
  doubling (up to MAX_FLOOR) while 429s keep coming with no answer between them; a
  pause longer than the run's `max_wait` is not taken (the run ends instead).
- An AIMD window bounds requests in flight (`window.py`): +1/window on success,
  halved on overload (503, 529, timeouts), and on other faults (resets, 500s, broken
  answers) only when they cluster: isolated faults are not overload.
- A timeout guard keeps a server's queue shorter than the request timeout, and
  counts a request that timed out as still on the server until it is likely done
  (`timeout_guard.py`).
- Limiters are shared by every run in the process for the same server, key and
  model (`registry.py`), so two cells running at once do not double the rate.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field

from .bucket import Bucket
from .headers import Quota, read_quotas, retry_after
from .timeout_guard import TimeoutGuard
from .window import Window

PROBE_WINDOW = 32  # requests in flight before the first success headers tell us the limits
# A request estimated over this many tokens goes alone until the first response tells the
# limits: one packed request can take a shallow token bucket's depth by itself (a 1 s
# bucket at 100,000 TPM holds 1,667), so a probe of them draws 429s; short rows keep
# the probe of PROBE_WINDOW.
LARGE_REQUEST = 512
DEFAULT_BURST_S = 1.0  # bucket depth assumed for a limit given without a reset
MIN_PAUSE = 0.05  # the shortest pause a 429 causes, whatever it names (`retry-after: 0`)
MAX_FLOOR = 5.0  # the floor doubles per burst of 429s with no answer between, up to this


@dataclass
class Limiter:
    """Admission control for one server + key + model, shared by the runs against it.
    Holds only what the server taught: header buckets, a 429 pause, the window and the
    timeout guard. A run's own `rpm`/`tpm`/`max_concurrency` live in `RunLimits`.
    Thread-safe."""

    max_concurrency: int  # the window's cap: the largest cap of the runs using it
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
        self._bursts = 0  # bursts of 429s since the last answer (a burst: one pause)
        self._guessed = False  # the requests bucket is our guess from headerless 429s
        self._recent: deque[float] = deque()  # times of recent successes
        self._runs: list[int] = []  # the caps of the runs using this limiter now
        self.guard = TimeoutGuard(timeout=timeout)
        self._lock = threading.Lock()

    def open_run(self, cap: int, *, timeout: float | None = None) -> None:
        """A run starts: the window's cap is the largest of the open runs' caps; an idle
        limiter also forgets an old run's window cuts."""
        with self._lock:
            self.guard.timeout = timeout
            idle = self.in_flight == 0 and not self._runs
            self._runs.append(cap)
            self.max_concurrency = self.window.cap = max(self._runs)
            if idle:
                self.guard.new_run()
                self.window.size = float(cap)
            self.window.size = min(self.window.size, float(self.window.cap))

    def close_run(self, cap: int) -> None:
        with self._lock:
            self._runs.remove(cap)
            if self._runs:
                self.max_concurrency = self.window.cap = max(self._runs)

    def set_concurrency(self, cap: int, *, timeout: float | None = None) -> None:
        """One run with `cap` (open_run after the last run closed)."""
        with self._lock:
            self._runs.clear()
        self.open_run(cap, timeout=timeout)

    def cost(self, prompt_estimate: int, max_tokens: int) -> float:
        """Token cost charged before sending: scaled prompt estimate + max_tokens."""
        return prompt_estimate * self.token_scale + max_tokens

    @property
    def limit(self) -> int:
        """Requests allowed in flight now: the window, the probe, the timeout guard."""
        return self.limit_for(paced=False)

    def probing(self, paced: bool) -> bool:
        """The first round: no response has told the limits and the caller does not pace
        itself (its own rpm/tpm)."""
        return not (self.learned or paced)

    def limit_for(self, *, paced: bool) -> int:
        """`limit`; `paced`: the caller paces itself (its own rpm/tpm), so the probe
        that guards a first burst against unknown limits does not apply."""
        probe = self.probing(paced)
        limit = min(PROBE_WINDOW, self.window.limit) if probe else self.window.limit
        guard = self.guard.cap()
        return limit if guard is None else min(limit, guard)

    def _busy(self, now: float) -> int:
        """Requests in flight, and timed-out ones the server is likely still working on."""
        return self.in_flight + self.guard.ghosts(now)

    def acquire(self, cost: float, now: float, *, paced: bool = False) -> float:
        """0.0 if a request of `cost` tokens may go now (it is counted in flight and
        charged); else the seconds to wait (`math.inf`: wait for a release; when ghosts
        fill the window, until the first one leaves, as no release may come)."""
        with self._lock:
            wait = max(0.0, self.paused_until - now)
            limit = self.limit_for(paced=paced)
            if self.probing(paced) and cost > LARGE_REQUEST and self.in_flight:
                limit = 0  # a large request in the first round goes alone
            if wait == 0 and self._busy(now) >= limit:
                # Ghosts leave with time, not with a release: when they fill the limit,
                # wait for the first to go.
                return math.inf if self.in_flight >= limit else self.guard.next_gone(now)
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
            self._quiet_429s = self._bursts = 0
            self._recent.append(now)
            self._forget_before(now - 1.0)  # else it grew by one per answer, for good
            if self._guessed and self.requests is not None:
                self.requests.refill(now)
                self.requests.rate += 1.0 / max(1.0, self.requests.rate)  # +1 req/s per second
            if prompt_tokens and prompt_estimate:
                ratio = prompt_tokens / prompt_estimate
                self.token_scale = 0.8 * self.token_scale + 0.2 * min(4.0, max(0.25, ratio))
            self._learn(headers, now, now_epoch)
            self.learned = True

    def admitted(self, now: float, headers: Mapping[str, str], now_epoch: float) -> bool:
        """A response's headers came (a success status) before its answer did: the limits
        they tell hold now. True if this ended the probe (more may go now)."""
        with self._lock:
            if self.learned:
                return False
            self._learn(headers, now, now_epoch)
            self.learned = True
            return True

    def failed(self, now: float, *, overload: bool, fault: bool = False,
               timed_out: float | None = None) -> None:
        """A request ended without an answer: `overload` (503, 529, a timeout) halves the
        window; a `fault` (a reset, a 500, a broken answer) only when faults cluster;
        neither (cancelled, a 400): no signal. `timed_out`: it had waited that many
        seconds for an answer in vain."""
        with self._lock:
            self.in_flight -= 1
            if overload or fault:
                self.window.fault(now, overload=overload)
            if timed_out is not None:
                self.guard.timed_out(now, timed_out, self._busy(now))

    def overloaded(self, now: float) -> bool:
        """Faults cluster, or the window was cut in the last cooldown: retries back off
        in full. Otherwise a fault is isolated and its retry need not wait long."""
        with self._lock:
            recent_cut = now - self.window.cut_at < self.window.cooldown_s
            return recent_cut or self.window.clustered()

    def rate_limited(self, now: float, headers: Mapping[str, str], now_epoch: float, *,
                     max_wait: float = math.inf) -> float:
        """A 429: pause every sender; returns the wait the server asked for (its
        `retry-after`, else what its quota headers imply, else our guess).

        The pause taken is at least MIN_PAUSE, doubled for each new burst of 429s (one
        that comes after the last pause ended) with no answer between them, up to
        MAX_FLOOR (and `max_wait`): a server answering 429 with `retry-after: 0` gets no
        request storm.
        A wait over `max_wait` is returned but not taken: the caller ends its run (a
        quota, not pacing), and no later run inherits a pause that long."""
        with self._lock:
            self.in_flight -= 1
            self.learned = True
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
            if pause > max_wait:
                return pause
            if now >= self.paused_until:
                self._bursts += 1
            floor = min(MAX_FLOOR, MIN_PAUSE * 2 ** min(self._bursts - 1, 32))
            taken = min(max(pause, floor), max_wait) + self.rng.uniform(0, 0.02)
            self.paused_until = max(self.paused_until, now + taken)
            return pause

    def _guess_rate(self, now: float) -> bool:
        """Multiplicative decrease of the request rate, once per cooldown: 3/4 of what
        the server just let through (answered in the last second, plus still in
        flight). A rate learned from headers is kept."""
        if self.requests is not None and not self._guessed:
            return False
        if now - self.window.cut_at < self.window.cooldown_s:
            return False
        self.window.cut_at = now
        self._forget_before(now - 1.0)
        seen = float(len(self._recent) + self.in_flight)
        if self.requests is not None:
            seen = min(seen, self.requests.rate)
        rate = max(0.5, 0.75 * seen)
        self.requests = Bucket(max(1.0, rate * 0.25), rate, 0.0, now)
        self._guessed = True
        return True

    def _forget_before(self, then: float) -> None:
        """Keep in `_recent` (times of successes) only the last second's: the rate guess
        reads no more."""
        while self._recent and self._recent[0] < then:
            self._recent.popleft()

    def _learn(self, headers: Mapping[str, str], now: float, now_epoch: float) -> dict[str, Quota]:
        quotas = read_quotas(headers, now_epoch)
        for name, quota in quotas.items():
            if name == "requests":
                self._guessed = False
            bucket = self.requests if name == "requests" else self.tokens
            rate = quota.per_minute / 60.0
            capacity = max(1.0, rate * DEFAULT_BURST_S)
            if quota.remaining is not None and quota.reset_s is not None:
                capacity = max(1.0, quota.remaining + quota.reset_s * rate)
            # At most a minute's worth: with the limit at least 1/min (headers.py), no
            # bucket makes a request wait over a minute, whatever the reset says.
            capacity = min(capacity, quota.per_minute)
            if bucket is None:
                # First news of this limit: what is left, less what we already sent.
                left = capacity if quota.remaining is None else min(capacity, quota.remaining)
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
