"""Scheduler: a fixed pool of workers fed by a bounded queue, with retries.

A million jobs never become a million tasks: `max_concurrency` workers pull from
a queue that holds at most twice that many jobs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import APIError, RateLimitError, RequestError
from .limiter import Gate, backoff, is_fatal, retry_after
from .metrics import Metrics
from .transport import Completion

J = TypeVar("J")


class FatalError(Exception):
    """Wraps the request error that stops the whole run."""

    def __init__(self, error: RequestError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class Scheduler(Generic[J]):
    """Send every job through `send`, at most `max_concurrency` at a time.

    `on_answer(job, completion)` gets each success, `on_failure(job, error)` each
    job that failed for good. A fatal error (bad key, wrong model, unreachable
    server) cancels the rest and is raised once as `FatalError`.
    """

    send: Callable[[J], Awaitable[Completion]]
    on_answer: Callable[[J, Completion], None]
    on_failure: Callable[[J, RequestError], None]
    metrics: Metrics
    max_concurrency: int
    max_retries: int
    rng: random.Random

    def __post_init__(self) -> None:
        self.gate = Gate(rng=self.rng)
        self._any_success = False

    async def run(self, jobs: Iterable[J]) -> None:
        queue: asyncio.Queue[J | None] = asyncio.Queue(maxsize=2 * self.max_concurrency)
        workers = [asyncio.ensure_future(self._work(queue)) for _ in range(self.max_concurrency)]
        feeder = asyncio.ensure_future(self._feed(jobs, queue, len(workers)))
        tasks = [feeder, *workers]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _feed(self, jobs: Iterable[J], queue: asyncio.Queue[J | None], n: int) -> None:
        for job in jobs:
            await queue.put(job)
        for _ in range(n):
            await queue.put(None)

    async def _work(self, queue: asyncio.Queue[J | None]) -> None:
        while (job := await queue.get()) is not None:
            await self._one(job)

    async def _one(self, job: J) -> None:
        for attempt in range(self.max_retries + 1):
            wait = self.gate.wait(time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            self.metrics.sending(retry=attempt > 0)
            try:
                completion = await self.send(job)
            except RequestError as exc:
                self.metrics.errored(rate_limited=isinstance(exc, RateLimitError))
                if is_fatal(exc, any_success=self._any_success):
                    raise FatalError(exc) from exc
                if not exc.retryable or attempt == self.max_retries:
                    self.on_failure(job, exc)
                    return
                await asyncio.sleep(self._delay(exc, attempt))
                continue
            self._any_success = True
            self.metrics.answered(
                completion.latency, completion.ttft,
                completion.prompt_tokens, completion.completion_tokens,
            )
            self.on_answer(job, completion)
            return

    def _delay(self, exc: RequestError, attempt: int) -> float:
        if isinstance(exc, RateLimitError):
            # The gate pauses every worker; this one waits for it like the others.
            self.gate.rate_limited(time.monotonic(), exc, time.time())
            return 0.0
        if isinstance(exc, APIError):
            asked = retry_after(exc.headers, time.time())
            if asked is not None:
                return asked
        return backoff(attempt, rng=self.rng)
