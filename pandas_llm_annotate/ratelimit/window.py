"""The window: a bound on requests in flight, AIMD on errors and a cap from queueing."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Window:
    """Bound on requests in flight: AIMD on errors, and a cap from queueing.

    AIMD: +1/size per success, halved on overload. Overload is what says so: a 503 or
    529, a timeout (`fault(overload=True)`). A reset, a 500 or a broken answer among
    successes is a random failure, not overload: halving on each one (as before) made
    20 % of such faults cost 94 % of the throughput. These (`fault(overload=False)`)
    halve only when they cluster: at least CLUSTER of the last RECENT outcomes failed
    (a server shedding load fails most of what it gets; at 20 % random faults, 16 of
    32 in a row happen about once in 10,000 answers).

    Queueing: a server that works through requests one (or a few) at a time answers
    slower, not with errors, as more wait. Rounds of answers are watched; when a
    round's median latency is over QUEUE_RATIO times the fastest answer ever seen (the
    service time with no queue), the server's useful parallelism is about rate × that
    fastest latency, and the window drops to twice that. The next round checks the
    drop: if throughput fell by more than FALL, the cap steps back up by doubling and
    the next round is checked against the same rate, until it holds or the old cap is
    back. (Undoing in full on the first slow round left the cap in place in 28 of 100
    short runs on a one-at-a-time server whose service times vary; stepping, 8.) A
    full undo leaves the signal quiet until the median latency grows half again past
    that round's. A round with no answer for half its time (and QUEUE_RATIO times the
    fastest answer), then a burst, is a pause, not a queue: the client stopped (a
    garbage collection of a large heap took up to 0.5 s in the test process) or the
    server did, and the answers read late carry the pause in their latency. It counts
    for nothing, nor does the rest of its burst. (In the test suite such a round, 0.69 s
    of silence, cut a window of 64 to 1 against a server answering within 0.03 s.)
    """

    cap: int
    size: float
    floor: float = 1.0
    cut_at: float = -math.inf
    cooldown_s: float = 1.0
    queue_cap: int | None = None  # from queueing; kept across runs on one server
    _round: _Round | None = None
    _after: float = -math.inf  # no round starts before this (the end of a pause's burst)
    _trial: _Trial | None = None
    fastest: float = math.inf  # the fastest answer seen from this server
    _undone_at: float = 0.0  # median latency of a round whose drop was undone
    _outcomes: deque[bool] = field(default_factory=deque)  # True: failed; the last RECENT

    QUEUE_RATIO = 3.0
    ROUND_ANSWERS = 16
    ROUND_S = 0.5
    RECENT = 32
    CLUSTER = 0.5
    MIN_SEEN = 8  # outcomes needed before faults can be said to cluster
    FALL = 0.1  # a drop that costs less throughput than this is kept

    def grow(self) -> None:
        """A success."""
        self._record(False)
        self.size = min(float(self.cap), self.size + 1.0 / self.size)

    def fault(self, now: float, *, overload: bool) -> bool:
        """A failed request: halve if it is `overload`, or if faults now cluster."""
        self._record(True)
        return (overload or self.clustered()) and self.cut(now)

    def clustered(self) -> bool:
        """At least CLUSTER of the recent outcomes (MIN_SEEN or more) are failures."""
        seen = len(self._outcomes)
        return seen >= self.MIN_SEEN and sum(self._outcomes) >= self.CLUSTER * seen

    def _record(self, failed: bool) -> None:
        self._outcomes.append(failed)
        if len(self._outcomes) > self.RECENT:
            self._outcomes.popleft()

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
        if in_flight > self.limit or now < self._after:
            self._round = None  # still draining after a drop, or a pause's burst
            return
        if self._round is None:
            self._round = _Round(now)
            return
        done = self._round.add(now, latency)
        elapsed = now - done.start
        if len(done.latencies) < self.ROUND_ANSWERS or elapsed < self.ROUND_S:
            return
        self._round = _Round(now)
        if done.gap > max(elapsed / 2, self.QUEUE_RATIO * self.fastest):
            self._round, self._after = None, now + self.fastest  # after the burst
            return
        rate = len(done.latencies) / elapsed
        median = sorted(done.latencies)[len(done.latencies) // 2]
        if self._trial is not None:
            self._judge(self._trial, rate, median)
        elif median > max(self.QUEUE_RATIO * self.fastest, 1.5 * self._undone_at):
            target = max(1, math.ceil(2 * rate * self.fastest))
            if target < self.limit:
                self._trial = _Trial(self.queue_cap, rate)
                self.queue_cap = target

    def _judge(self, trial: _Trial, rate: float, median: float) -> None:
        """A round after a drop: keep the drop if the throughput held, else step back up
        by doubling and judge again against the same rate. One slow round (or one fast
        round before the drop) then costs a step, not the whole drop."""
        if rate >= (1 - self.FALL) * trial.rate:
            self._trial = None
            return
        step = 2 * (self.queue_cap or self.cap)  # not `limit`: AIMD may hold it lower
        if step < min(self.cap, trial.cap or self.cap):
            self.queue_cap = step
            return
        self._trial = None
        self.queue_cap = trial.cap  # undone in full,
        self._undone_at = median  # and quiet until latency grows well past it


@dataclass
class _Trial:
    """A drop under test: the cap before it and the rate of the round that led to it."""

    cap: int | None
    rate: float


@dataclass
class _Round:
    """Answers since `start`: their latencies and the longest time between two."""

    start: float
    latencies: list[float] = field(default_factory=list)
    gap: float = 0.0
    last: float | None = None

    def add(self, now: float, latency: float) -> _Round:
        self.latencies.append(latency)
        self.gap = max(self.gap, now - (self.start if self.last is None else self.last))
        self.last = now
        return self
