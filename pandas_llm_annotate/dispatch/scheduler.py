"""Scheduler: a fixed pool of workers fed by a bounded queue, admitted by the limiter,
with retries.

A million jobs never become a million tasks: `max_concurrency` workers pull from
a queue that holds at most twice that many jobs (`jobs.py`). A worker takes a job
only when its server has room in its window, so with several servers (one scheduler
each, one shared queue: `servers.py`) a free server takes the next job. A worker the
limiter turns away waits on a future that a release wakes (`waiters.py`), or sleeps
for the time the limiter names (a pause, a bucket refill): it never polls.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import (
    APIError,
    MalformedResponse,
    RateLimitError,
    ReadTimeout,
    RequestError,
)
from ..protocol.transport import Completion
from ..ratelimit.headers import retry_after
from ..ratelimit.limiter import MIN_PAUSE
from ..report.metrics import Metrics
from .budget import Budget
from .jobs import Entry, JobQueue, drain
from .request import Admission, Health
from .request import FatalError as FatalError  # re-exported: the run catches it
from .request import Request as Request  # re-exported: request builders make them
from .retry import backoff, is_fatal, never_answers, wait_too_long
from .waiters import waiters_for

J = TypeVar("J")
OVERLOAD_STATUS = {503, 529}
RATE_LIMIT_RETRIES = 50  # 429s that named a wait are not counted against max_retries up to this
ISOLATED_RETRY_S = 0.1  # a fault that is not overload is retried within this (jittered)
SILENT_TIMEOUTS = 3  # timeouts before the server answered anything in this run: it never will
MAX_MOVES = 10  # several servers: a job moves off failing ones this often, then retries count


class _HandBack(Exception):
    """The job goes back to the queue, for whichever server has room."""


@dataclass
class Scheduler(Generic[J]):
    """Send every job, at most `max_concurrency` (and the limiter's window) at a time.

    `prepare(job)` builds the request; `on_answer(job, completion)` handles a success
    and returns follow-up jobs (e.g. rows of a pack to ask again alone), which the
    same worker sends next; `on_failure(job, error)` gets each job that failed for
    good. `reformat(request, error)` says whether the server refused the request's
    answer format and a weaker one is now chosen: the job is then prepared again
    (an identical rejected request is never resent); `refresh(request)` rebuilds one
    whose format went stale while it waited for admission. A fatal error (bad key, wrong
    model, unreachable server, a server-named wait over `max_wait` seconds,
    SILENT_TIMEOUTS timeouts before the server answered anything) cancels the rest
    and is raised once as `FatalError`.

    A 429 that names a wait of at least MIN_PAUSE is pacing, not failure: it does not
    use up `max_retries` (up to RATE_LIMIT_RETRIES of them). One that names less
    (`retry-after: 0`) or nothing counts as a retry like any other error.
    """

    prepare: Callable[[J], Request[J]]
    send: Callable[..., Awaitable[Completion]]  # (body) or (body, on_headers=)
    on_answer: Callable[[J, Completion], Sequence[J]]
    on_failure: Callable[[J, RequestError], None]
    limiter: Admission
    metrics: Metrics
    max_concurrency: int
    max_retries: int
    reformat: Callable[[Request[J], RequestError], bool] = lambda request, error: False
    refresh: Callable[[Request[J]], Request[J]] = lambda request: request
    rng: random.Random = field(default_factory=random.Random)
    max_wait: float = math.inf  # the run's `max_wait` setting
    budget: Budget | None = None  # the run's `max_cost`: each attempt reserves its bound
    health: Health | None = None  # one server of several: set aside when it stops answering
    # `send` takes `on_headers=`: while the limits are unknown (the probe), they are
    # learned from a response's headers, before its answer is read (streamed: at the
    # first token, not with the whole answer)
    early_headers: bool = False

    def __post_init__(self) -> None:
        self._any_success = False
        self._any_answer = False  # the server sent anything back: an answer, an error
        self._silent_timeouts = 0  # timeouts while it had not
        self._waiters = waiters_for(getattr(self.limiter, "shared", self.limiter))
        self._holding = 0  # jobs this scheduler's workers hold
        self._has_room = asyncio.Condition()

    async def run(self, jobs: Iterable[J] | AsyncIterable[J]) -> None:
        queue: JobQueue[J] = JobQueue(maxsize=2 * self.max_concurrency)
        await drain(queue, jobs, self.workers(queue))

    def workers(self, queue: JobQueue[J]) -> list[Coroutine[Any, Any, None]]:
        """This scheduler's workers on `queue`, which other servers' workers may share."""
        return [self._work(queue) for _ in range(self.max_concurrency)]

    async def _work(self, queue: JobQueue[J]) -> None:
        while True:
            await self._room()
            entry = await queue.get()
            if entry is None:
                return
            self._holding += 1
            try:
                todo = [entry]
                while todo:
                    entry = todo.pop()
                    try:
                        todo.extend(Entry(j) for j in await self._one(entry.job, entry.moves))
                    except _HandBack:  # the server is failing: another one takes it
                        await queue.give_back(Entry(entry.job, entry.moves + 1))
            finally:
                self._holding -= 1
                await queue.done()
                if self.health is not None:
                    async with self._has_room:
                        self._has_room.notify(max(1, self.limiter.limit - self._holding))

    async def _room(self) -> None:
        """One server of several: wait until it may take a job (it is not set aside, and
        the jobs its workers hold are fewer than its limit). A worker that would only
        wait for the window leaves the job in the queue for a server with room (work
        stealing). Alone, a server's workers wait for the window in `_admit`."""
        if self.health is None:
            return
        await self.health.ready()
        async with self._has_room:
            await self._has_room.wait_for(lambda: self._holding < self.limiter.limit)

    async def _admit(self, cost: float) -> None:
        future: asyncio.Future[None] | None = None
        while True:
            wait = self.limiter.acquire(cost, time.monotonic())
            if future is not None and not future.done() and not math.isinf(wait):
                self._waiters.discard(future)  # no need to be woken any more
                future = None
            if wait == 0:
                if len(self._waiters):
                    self._waiters.wake()  # room may be left: the next one tries
                return
            if not math.isinf(wait):
                await asyncio.sleep(wait)
            elif future is None or future.done():
                future = self._waiters.add()  # then try once more: a release may just
                continue                      # have come before we were in the queue
            else:
                try:
                    await future
                except asyncio.CancelledError:
                    self._waiters.discard(future)
                    if future.done() and not future.cancelled():
                        self._waiters.wake()  # woken, then cancelled: pass the wake on
                    raise

    def _release(self) -> None:
        self._waiters.wake()

    async def _one(self, job: J, moves: int = 0) -> Sequence[J]:
        """Send `job` until it is answered or fails for good; `moves`: times it was
        handed back by failing servers (its first attempt here is then a retry)."""
        request = self.prepare(job)
        cost = self.limiter.cost(request.prompt_estimate, request.max_tokens)
        attempt = rate_waits = 0
        while True:
            held = 0.0
            if self.budget is not None:  # BudgetReached ends the run, nothing in flight
                held = self.budget.bound(request.prompt_estimate, request.max_tokens)
                await self.budget.reserve(held)
            await self._admit(cost)
            request = self.refresh(request)  # a refusal may have come while it waited
            self.metrics.sending(retry=attempt + rate_waits + moves > 0)
            self.metrics.window = self.limiter.limit
            early = self.early_headers and self.limiter.probing
            try:
                completion = await (self.send(request.body, on_headers=self._on_headers)
                                    if early else self.send(request.body))
            except RequestError as exc:
                self._spent(held, None if isinstance(exc, APIError) else held)
                self.metrics.errored(rate_limited=isinstance(exc, RateLimitError))
                asked = self._settle_error(exc)
                self._release()
                if self.reformat(request, exc):
                    request = self.prepare(job)
                    rate_waits += 1
                    continue
                fatal = self._fatal(exc, asked)
                if self.health is not None and self.health.moves(exc) and moves < MAX_MOVES:
                    raise _HandBack from exc  # the server's fault: not one of the job's retries
                if fatal is not None:
                    raise FatalError(fatal) from exc
                if isinstance(exc, RateLimitError) and self._named_wait(exc) \
                        and rate_waits < RATE_LIMIT_RETRIES:
                    rate_waits += 1  # the server told us when: that is pacing, not failure
                elif not exc.retryable or attempt >= self.max_retries:
                    self.on_failure(job, exc)
                    return ()
                else:
                    attempt += 1
                    await asyncio.sleep(self._backoff(exc, attempt))
                continue
            except BaseException:
                self._spent(held, held)  # it may have been billed
                self.limiter.failed(time.monotonic(), overload=False)
                self.metrics.abandoned()
                self._release()
                raise
            self._any_success = self._any_answer = True
            self.limiter.succeeded(
                time.monotonic(), completion.headers, time.time(),
                prompt_estimate=request.prompt_estimate, prompt_tokens=completion.prompt_tokens,
                latency=completion.latency,
            )
            self._release()
            if self.budget is not None:  # by its usage, else the bound
                used = self.budget.cost(completion.prompt_tokens, completion.completion_tokens)
                self._spent(held, held if used is None else used)
            self.metrics.answered(
                completion.latency, completion.ttft,
                completion.prompt_tokens, completion.completion_tokens,
                estimate=request.prompt_estimate,
            )
            return self.on_answer(job, completion)

    def _on_headers(self, headers: dict[str, str]) -> None:
        """A response's headers, before its answer is read: what they tell of the limits
        holds now, and if the probe ended, the workers waiting for it go."""
        if self.limiter.admitted(time.monotonic(), headers, time.time()):
            self._waiters.wake()

    def _spent(self, held: float, cost: float | None) -> None:
        """A reserved attempt ended having cost `cost` (None: nothing, e.g. an HTTP error
        status; a timeout or a dropped connection may have been billed: its bound)."""
        if self.budget is not None:
            self.budget.settle(held, cost)

    def _settle_error(self, exc: RequestError) -> float | None:
        """Tell the limiter; the wait the server asked for, if any (for a 429, also one
        its quota headers imply)."""
        now = time.monotonic()
        if isinstance(exc, (APIError, MalformedResponse)):
            self._any_answer = True
        if isinstance(exc, RateLimitError):
            return self.limiter.rate_limited(now, exc.headers, time.time(),
                                             max_wait=self.max_wait)
        overload = isinstance(exc, ReadTimeout) or (
            isinstance(exc, APIError) and exc.status in OVERLOAD_STATUS
        )
        elapsed = exc.elapsed if isinstance(exc, ReadTimeout) else None
        self.limiter.failed(now, overload=overload, fault=exc.retryable, timed_out=elapsed)
        return retry_after(exc.headers, time.time()) if isinstance(exc, APIError) else None

    def _fatal(self, exc: RequestError, asked: float | None) -> RequestError | None:
        """The error that ends the run, if `exc` calls for one: `retry.is_fatal`, a wait
        over `max_wait`, or SILENT_TIMEOUTS timeouts before any answer."""
        if is_fatal(exc, any_success=self._any_success):
            return exc
        if isinstance(exc, APIError) and asked is not None and asked > self.max_wait:
            return wait_too_long(exc, asked, self.max_wait)
        if isinstance(exc, ReadTimeout) and not self._any_answer:
            self._silent_timeouts += 1
            if self._silent_timeouts >= SILENT_TIMEOUTS:
                return never_answers(exc, self._silent_timeouts)
        return None

    @staticmethod
    def _named_wait(exc: RateLimitError) -> bool:
        """The 429 named a wait worth honouring (not none, not `retry-after: 0`)."""
        named = retry_after(exc.headers, time.time())
        return named is not None and named >= MIN_PAUSE

    def _backoff(self, exc: RequestError, attempt: int) -> float:
        """Full backoff while the server looks overloaded; an isolated fault among
        successes (a reset, a 500) is retried within ISOLATED_RETRY_S, at every attempt:
        the answers around it show the server is fine, and its worker sends nothing
        while it waits (exponential waits made the last rows of a run wait seconds)."""
        if isinstance(exc, RateLimitError):
            return 0.0  # the limiter's pause already holds every sender back
        if self.limiter.overloaded(time.monotonic()):
            delay = backoff(attempt, rng=self.rng)
        else:
            delay = self.rng.uniform(0, ISOLATED_RETRY_S)
        if isinstance(exc, APIError):
            asked = retry_after(exc.headers, time.time())
            if asked is not None:
                return max(asked, delay)  # what the server asked, and never a tight loop
        return delay
