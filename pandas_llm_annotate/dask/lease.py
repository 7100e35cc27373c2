"""A worker process's share of the cluster's rate budget: request slots leased from the
coordinator (`coordinator.py`), many at a time, by a keeper thread. Installed as the
process's limiter for that server, key and model while a Dask task annotates, so the
pipeline runs unchanged: its scheduler asks this object, which answers from its stock
(no network), and records how each request ended for the next lease call.

If the coordinator cannot be reached (the worker holding it died), the stock turns into
a plain local `Limiter` for the rest of its life: the run goes on, each process under its
own limits, and `notice` says so.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from ..dispatch.waiters import waiters_for
from ..ratelimit import registry
from ..ratelimit.bucket import Bucket
from ..ratelimit.headers import retry_after
from ..ratelimit.limiter import MIN_PAUSE, PROBE_WINDOW, Limiter
from .coordinator import Coordinator, Outcome, rate_headers

LEASE = 16  # slots asked for at a time at most: as many as workers wait for one
IDLE_S = 0.25  # slots no worker took for this long go back (others may need them)
POLL_S = 0.1  # the keeper reports outcomes at least this often while anything is out
CALL_TIMEOUT_S = 5.0  # a lease call that takes longer: the coordinator is gone


class LeaseStock(Limiter):
    """The process's limiter for one server + key + model during a Dask computation."""

    def __init__(self, coordinator: Any, *, max_concurrency: int,
                 timeout: float | None) -> None:
        super().__init__(max_concurrency=max_concurrency, timeout=timeout)
        self.coordinator = coordinator
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.slots = 0
        self.notice = ""
        self.broken = False
        self._outcomes: list[Outcome] = []
        self._asked = False  # an acquire found no slot since the last lease call
        self._took = 0.0  # when a slot was last taken
        self._cost = 1.0
        self._limit = PROBE_WINDOW
        self._overloaded = False
        self._open = 0
        self._stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="pla-lease", daemon=True)
        self._thread.start()

    # -- what the scheduler and the run ask (the Limiter interface) --

    def open_run(self, cap: int, *, timeout: float | None = None) -> None:
        super().open_run(cap, timeout=timeout)
        with self._lock:
            self._open += 1

    def close_run(self, cap: int) -> None:
        super().close_run(cap)
        with self._lock:
            self._open -= 1
        self._wake.set()  # unused slots go back

    def limit_for(self, *, paced: bool) -> int:
        return super().limit_for(paced=paced) if self.broken else self._limit

    def acquire(self, cost: float, now: float, *, paced: bool = False) -> float:
        if self.broken:
            return super().acquire(cost, now, paced=paced)
        with self._lock:
            self._cost = cost
            if self.paused_until > now:
                return self.paused_until - now
            if self.slots >= 1:
                self.slots -= 1
                self.in_flight += 1
                self._took = now
                return 0.0
            self._asked = True
        self._wake.set()
        return math.inf  # the keeper wakes the waiters when slots come

    def succeeded(self, now: float, headers: Mapping[str, str], now_epoch: float, *,
                  prompt_estimate: int = 0, prompt_tokens: int | None = None,
                  latency: float | None = None) -> None:
        if self.broken:
            return super().succeeded(now, headers, now_epoch, prompt_estimate=prompt_estimate,
                                     prompt_tokens=prompt_tokens, latency=latency)
        self._ended(("ok", rate_headers(headers), prompt_estimate, prompt_tokens, latency))

    def probing(self, paced: bool) -> bool:
        return super().probing(paced) if self.broken else False  # the coordinator's

    def admitted(self, now: float, headers: Mapping[str, str], now_epoch: float) -> bool:
        return super().admitted(now, headers, now_epoch) if self.broken else False

    def failed(self, now: float, *, overload: bool, fault: bool = False,
               timed_out: float | None = None) -> None:
        if self.broken:
            return super().failed(now, overload=overload, fault=fault, timed_out=timed_out)
        self._ended(("failed", overload, fault, timed_out))

    def overloaded(self, now: float) -> bool:
        return super().overloaded(now) if self.broken else self._overloaded

    def rate_limited(self, now: float, headers: Mapping[str, str], now_epoch: float, *,
                     max_wait: float = math.inf) -> float:
        if self.broken:
            return super().rate_limited(now, headers, now_epoch, max_wait=max_wait)
        asked = retry_after(headers, now_epoch)
        pause = MIN_PAUSE if asked is None else max(MIN_PAUSE, asked)
        with self._lock:  # this process waits at once; the others after the next lease call
            if pause <= max_wait:
                self.paused_until = max(self.paused_until, now + pause)
        self._ended(("429", rate_headers(headers), max_wait))
        return 1.0 if asked is None else asked

    def _ended(self, outcome: Outcome) -> None:
        with self._lock:
            self.in_flight -= 1
            self._outcomes.append(outcome)
        self._wake.set()

    # -- the keeper thread --

    def _keep(self) -> None:
        while not self.broken:
            if self._stopping:
                self._last_report()
                return
            self._wake.wait(POLL_S)
            self._wake.clear()
            waiting = len(waiters_for(self))
            with self._lock:
                outcomes, self._outcomes = self._outcomes, []
                demand = min(LEASE, waiting + 1) - self.slots  # the workers waiting, and one
                want = max(0, demand) if self._open and self._asked else 0
                self._asked = False
                idle = not waiting and time.monotonic() - self._took > IDLE_S
                if self.slots and (not self._open or idle):  # give back what no one uses
                    outcomes += [("unused",)] * self.slots
                    self.slots = 0
                busy = self.in_flight > 0 or self.slots > 0
            if not outcomes and not want and not busy:
                continue
            try:
                grant = self.coordinator.lease(self.holder, want, self._cost,
                                               outcomes).result(timeout=CALL_TIMEOUT_S)
            except Exception as exc:  # any failure: the coordinator is gone
                self._break(exc)
                return
            self._take(grant, want)

    def _take(self, grant: dict[str, Any], want: int) -> None:
        now = time.monotonic()
        granted = int(grant["granted"])
        with self._lock:
            self.slots += granted
            if granted:
                self._took = now  # not idle: the workers woken are on their way
            self.paused_until = max(self.paused_until, now + float(grant["pause"]))
            self._limit = int(grant["limit"])
            self._overloaded = bool(grant["overloaded"])
            self.token_scale = float(grant["token_scale"])
            depth = grant["token_depth"]
            self.tokens = None if depth is None else Bucket(depth, 0.0, depth, now)
            if granted < want:
                self._asked = True  # ask again next round: the waiters still wait
        if granted:
            waiters_for(self).wake(granted)
        if granted < want and grant["wait"] is not None:  # a bucket refills: not before
            time.sleep(min(POLL_S, grant["wait"]))
            self._wake.set()

    def _break(self, exc: BaseException) -> None:
        with self._lock:
            self.broken = True
            self.slots = 0
            self.tokens = None
            self.notice = (f"the cluster's rate coordinator could not be reached ({exc!r}); "
                           "this worker went on under its own limits")
        waiters = waiters_for(self)
        waiters.wake(len(waiters))  # they ask again, of the local limiter now

    def _last_report(self) -> None:
        """Give back unused slots and report the last outcomes (the keeper's last call):
        a coordinator found gone by it still shows in `notice`."""
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            outcomes += [("unused",)] * self.slots
            self.slots = 0
        if not outcomes:
            return
        try:
            self.coordinator.lease(self.holder, 0, self._cost,
                                   outcomes).result(timeout=CALL_TIMEOUT_S)
        except Exception as exc:
            self._break(exc)

    def stop(self) -> None:
        """End the keeper after its last report, waiting for it (at most a lease call's
        timeout): whether the coordinator was still there is known when this returns."""
        with self._lock:
            self._open = 0
            self._stopping = True
        self._wake.set()
        self._thread.join(CALL_TIMEOUT_S + 1.0)
        self.broken = True  # whoever still asks it gets a local limiter, not a wait


_stocks: dict[str, LeaseStock] = {}  # actor key -> the process's stock (a broken one too:
_users: dict[int, int] = {}  # it goes on as a local limiter); id(stock) -> tasks using it
_lock = threading.Lock()


@contextlib.contextmanager
def leased(coordinators: Mapping[str, tuple[str, str]], api_key: str | None, model: str, *,
           max_concurrency: int, timeout: float | None) -> Iterator[list[LeaseStock]]:
    """While inside, every run in this process against these servers (with this key and
    model) takes its slots from the cluster's coordinators. Tasks running at once in one
    process share one stock per coordinator."""
    from distributed.actor import Actor

    used: list[tuple[str, str, LeaseStock]] = []
    with _lock:
        for url, (address, key) in coordinators.items():
            stock = _stocks.get(key)
            if stock is None:
                actor = Actor(Coordinator, address, key)
                stock = _stocks[key] = LeaseStock(actor, max_concurrency=max_concurrency,
                                                  timeout=timeout)
            _users[id(stock)] = _users.get(id(stock), 0) + 1
            registry.install(url, api_key, model, stock)
            used.append((url, key, stock))
    try:
        yield [stock for _, _, stock in used]
    finally:
        done: list[LeaseStock] = []
        with _lock:
            for url, key, stock in used:
                _users[id(stock)] -= 1
                if _users[id(stock)]:
                    continue
                del _users[id(stock)], _stocks[key]
                registry.uninstall(url, api_key, model, stock)
                done.append(stock)
        for stock in done:
            stock.stop()
