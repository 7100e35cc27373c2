"""Scheduler: a fixed pool of workers fed by a bounded queue, admitted by the limiter,
with retries.

A million jobs never become a million tasks: `max_concurrency` workers pull from
a queue that holds at most twice that many jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import (
    APIError,
    ConnectionLost,
    RateLimitError,
    ReadTimeout,
    RequestError,
)
from .limiter import Limiter, backoff, is_fatal, retry_after
from .metrics import Metrics
from .transport import Completion

J = TypeVar("J")
OVERLOAD_STATUS = {503, 529}
RATE_LIMIT_RETRIES = 50  # 429s that named a wait are not counted against max_retries up to this


class FatalError(Exception):
    """Wraps the request error that stops the whole run."""

    def __init__(self, error: RequestError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Request(Generic[J]):
    """A job ready to send: the JSON body and what the limiter charges for it."""

    job: J
    body: dict[str, Any]
    prompt_estimate: int
    max_tokens: int
    form: str = "plain"  # the structured-output form in the body


@dataclass
class Scheduler(Generic[J]):
    """Send every job, at most `max_concurrency` (and the limiter's window) at a time.

    `prepare(job)` builds the request; `on_answer(job, completion)` handles a success
    and returns follow-up jobs (e.g. rows of a pack to ask again alone), which the
    same worker sends next; `on_failure(job, error)` gets each job that failed for
    good. `reformat(request, error)` says whether the server refused the request's
    answer format and a weaker one is now chosen: the job is then prepared again
    (an identical rejected request is never resent). A fatal error (bad key, wrong
    model, unreachable server) cancels the rest and is raised once as `FatalError`.
    """

    prepare: Callable[[J], Request[J]]
    send: Callable[[dict[str, Any]], Awaitable[Completion]]
    on_answer: Callable[[J, Completion], Sequence[J]]
    on_failure: Callable[[J, RequestError], None]
    limiter: Limiter
    metrics: Metrics
    max_concurrency: int
    max_retries: int
    reformat: Callable[[Request[J], RequestError], bool] = lambda request, error: False
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._any_success = False
        self._released = asyncio.Event()

    async def run(self, jobs: Iterable[J] | AsyncIterable[J]) -> None:
        queue: asyncio.Queue[J | None] = asyncio.Queue(maxsize=2 * self.max_concurrency)
        workers = [asyncio.ensure_future(self._work(queue)) for _ in range(self.max_concurrency)]
        feeder = asyncio.ensure_future(self._feed(jobs, queue, len(workers)))
        tasks = [feeder, *workers]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error
        finally:
            # Cancel until every task is done: on Python 3.11, `asyncio.wait_for` (in
            # `_admit`) swallows a cancel that lands as its inner wait completes, and that
            # worker would then wait on the queue forever.
            while pending := [task for task in tasks if not task.done()]:
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=0.1)
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _feed(self, jobs: Iterable[J] | AsyncIterable[J], queue: asyncio.Queue[J | None],
                    n: int) -> None:
        if isinstance(jobs, AsyncIterable):  # e.g. the semantic stage, deciding as it goes
            async for job in jobs:
                await queue.put(job)
        else:
            for job in jobs:
                await queue.put(job)
        for _ in range(n):
            await queue.put(None)

    async def _work(self, queue: asyncio.Queue[J | None]) -> None:
        while (job := await queue.get()) is not None:
            todo = [job]
            while todo:
                todo.extend(await self._one(todo.pop()))

    async def _admit(self, cost: float) -> None:
        while True:
            wait = self.limiter.acquire(cost, time.monotonic())
            if wait == 0:
                return
            if math.isinf(wait):
                self._released.clear()
                # A release elsewhere (another run sharing the limiter) is polled.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._released.wait(), 0.05)
            else:
                await asyncio.sleep(wait)

    def _release(self) -> None:
        self._released.set()

    async def _one(self, job: J) -> Sequence[J]:
        request = self.prepare(job)
        cost = self.limiter.cost(request.prompt_estimate, request.max_tokens)
        attempt = rate_waits = 0
        while True:
            await self._admit(cost)
            self.metrics.sending(retry=attempt + rate_waits > 0)
            self.metrics.window = self.limiter.limit
            try:
                completion = await self.send(request.body)
            except RequestError as exc:
                self.metrics.errored(rate_limited=isinstance(exc, RateLimitError))
                delay = self._settle_error(exc)
                self._release()
                if self.reformat(request, exc):
                    request = self.prepare(job)
                    rate_waits += 1
                    continue
                if is_fatal(exc, any_success=self._any_success):
                    raise FatalError(exc) from exc
                if isinstance(exc, RateLimitError) and delay is not None \
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
                self.limiter.failed(time.monotonic(), overload=False)
                self.metrics.abandoned()
                self._release()
                raise
            self._any_success = True
            self.limiter.succeeded(
                time.monotonic(), completion.headers, time.time(),
                prompt_estimate=request.prompt_estimate, prompt_tokens=completion.prompt_tokens,
                latency=completion.latency,
            )
            self._release()
            self.metrics.answered(
                completion.latency, completion.ttft,
                completion.prompt_tokens, completion.completion_tokens,
            )
            return self.on_answer(job, completion)

    def _settle_error(self, exc: RequestError) -> float | None:
        """Tell the limiter; for a 429, the pause it set (None when the server named none)."""
        now = time.monotonic()
        if isinstance(exc, RateLimitError):
            named = retry_after(exc.headers, time.time())
            self.limiter.rate_limited(now, exc.headers, time.time())
            return named
        overload = isinstance(exc, (ReadTimeout, ConnectionLost)) or (
            isinstance(exc, APIError) and exc.status in OVERLOAD_STATUS
        )
        elapsed = exc.elapsed if isinstance(exc, ReadTimeout) else None
        self.limiter.failed(now, overload=overload, timed_out=elapsed)
        return None

    def _backoff(self, exc: RequestError, attempt: int) -> float:
        if isinstance(exc, RateLimitError):
            return 0.0  # the limiter's pause already holds every sender back
        if isinstance(exc, APIError):
            asked = retry_after(exc.headers, time.time())
            if asked is not None:
                return asked
        return backoff(attempt, rng=self.rng)
