"""The timeout guard: pure policy, no I/O, every method given the time (`now`).

Keeps a server's queue shorter than the request timeout, and counts a request that
timed out as still on the server until it is likely done. Part of the limiter
(`limiter.Limiter.guard`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class TimeoutGuard:
    """Keeps queueing well inside the request timeout, for servers that queue rather
    than refuse (llama.cpp's server answers one request at a time).

    Little's law: with `n` in flight and `rate` answers a second, a request waits
    `n / rate` on average. Once answers take over a quarter of the timeout, or one
    timed out, the guard engages and keeps at most `rate * timeout / 2` in flight.
    Each cut is a trial: on a server that queues, the answers to requests sent under
    the cap come back faster; on one whose answers are simply slow (long outputs on
    a server that works in parallel) they do not, and the guard lets go of this
    server for good: fewer in flight cannot make its answers come sooner.

    A request that timed out is often still being worked on (llama.cpp keeps a
    request whose client left): it stays counted as a ghost until a request sent
    after it is answered, or its share of the server's time (`1 / rate`, at most the
    time it waited) has passed, so its retry does not queue behind it and time out
    too.
    """

    timeout: float | None = None
    engaged: bool = False
    _answers: deque[float] = field(default_factory=deque)  # answer times, recent
    _latencies: deque[float] = field(default_factory=deque)
    _ghosts: deque[tuple[float, float]] = field(default_factory=deque)  # (sent, gone by)
    _last_rate: float | None = None
    _trial: _Trial | None = None
    _kept_cap: int | None = None  # the cap when the last trial confirmed queueing
    _quiet: bool = False  # a trial showed that this server does not queue

    RECENT = 16  # latencies the median is read from; answers a trial waits for

    def rate(self) -> float | None:
        """Answers per second over the last two median latencies (at least 1 s); before
        two answers in this run, the last run's; None when never measured."""
        if len(self._answers) < 2:
            return self._last_rate
        span = self._answers[-1] - self._answers[0]
        return (len(self._answers) - 1) / span if span > 0 else self._last_rate

    def cap(self) -> int | None:
        """The most requests in flight (ghosts included); None: no bound. Also None while
        no rate was ever measured: with no answer to work from, one in flight would only
        serialise the retries of a server that does not answer at all (the scheduler
        ends such a run)."""
        if self.timeout is None or not self.engaged:
            return None
        rate = self.rate()
        return None if rate is None else max(1, int(rate * self.timeout / 2))

    def ghosts(self, now: float) -> int:
        while self._ghosts and self._ghosts[0][1] <= now:
            self._ghosts.popleft()
        return len(self._ghosts)

    def next_gone(self, now: float) -> float:
        """Seconds until the first ghost is gone (math.inf: there is none)."""
        self.ghosts(now)
        return self._ghosts[0][1] - now if self._ghosts else math.inf

    def new_run(self) -> None:
        """Forget the answer times (an idle gap between runs is not the server's rate),
        keeping the last rate measured until this run has its own."""
        self._last_rate = self.rate()
        self._answers.clear()

    def answered(self, now: float, latency: float, in_flight: int) -> None:
        """An answer after `latency` s; `in_flight`: requests (and ghosts) still out."""
        self._latencies.append(latency)
        if len(self._latencies) > self.RECENT:
            self._latencies.popleft()
        median = sorted(self._latencies)[len(self._latencies) // 2]
        self._answers.append(now)
        while len(self._answers) > 2 and self._answers[0] < now - max(1.0, 2 * median):
            self._answers.popleft()
        if self._ghosts:  # a server working in order is done with what came before
            sent = now - latency
            self._ghosts = deque(g for g in self._ghosts if g[0] >= sent)
        if self.timeout is None:
            return
        cap = self.cap()
        if not self.engaged:
            if not self._quiet and median > self.timeout / 4:
                self._engage(in_flight + 1)  # + 1: the request just answered
        elif self._trial is not None:
            if not self._restarted(in_flight + 1):
                self._judge(now, latency, in_flight, cap)
        elif cap is not None and self._kept_cap is not None and cap < self._kept_cap / 2:
            self._engage(in_flight + 1)  # cut far below what was confirmed: try again

    def timed_out(self, now: float, elapsed: float, in_flight: int) -> None:
        if not self.engaged and not self._quiet:
            self._engage(in_flight + 1)
        elif self._trial is not None:
            self._restarted(in_flight + 1)
        rate = self.rate()
        share = elapsed if rate is None else min(elapsed, 1.0 / rate)
        last = self._ghosts[-1][1] if self._ghosts else now
        self._ghosts.append((now - elapsed, max(now, last) + share))

    def _engage(self, in_flight: int) -> None:
        self.engaged = True
        self._trial = _Trial(queue=in_flight)

    def _restarted(self, queue: int) -> bool:
        """A queue longer than the trial's (it engaged on one slow answer alone, a queue
        of one): the trial starts again from it, else it would judge a cut that cut
        nothing and let go of a server that queues."""
        assert self._trial is not None
        if queue <= self._trial.queue:
            return False
        self._engage(queue)
        return True

    def _judge(self, now: float, latency: float, in_flight: int, cap: int | None) -> None:
        trial = self._trial
        assert trial is not None
        if trial.expected is None:  # what the queue at the cut makes a request wait
            rate = self.rate()
            if rate is None:
                return
            trial.expected = trial.queue / rate
        if trial.capped_at is None:
            if cap is not None and in_flight > cap:
                return  # still coming down to the cap
            trial.capped_at = now
        if now - latency < trial.capped_at:
            return  # sent before the cap held
        trial.latencies.append(latency)
        if len(trial.latencies) < self.RECENT:
            return
        self._trial = None
        after = sorted(trial.latencies)[len(trial.latencies) // 2]
        if after > 0.8 * trial.expected:  # fewer in flight, not faster: no queue
            self.engaged, self._quiet, self._kept_cap = False, True, None
        else:
            self._kept_cap = cap


@dataclass
class _Trial:
    queue: int  # requests (and ghosts) out when the guard engaged
    expected: float | None = None  # seconds `queue` makes a request wait, by Little's law
    capped_at: float | None = None  # when requests in flight came down to the cap
    latencies: list[float] = field(default_factory=list)  # of requests sent after that
