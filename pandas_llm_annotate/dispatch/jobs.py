"""The jobs of a run, shared by every worker of every server: a bounded queue that a
feeder fills, workers take from and hand jobs back to (a server set aside gives its
jobs to the others), and that knows when the run is over (the feeder is done and no
job is queued or held). No polling: waits are on conditions."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

J = TypeVar("J")


@dataclass(frozen=True)
class Entry(Generic[J]):
    """A job, and how often failing servers handed it back."""

    job: J
    moves: int = 0


class JobQueue(Generic[J]):
    """At most `maxsize` jobs waiting (a million rows never become a million objects);
    jobs handed back go to the front and never wait for room."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Entry[J]] = deque()
        self._held = 0  # jobs taken and not yet done
        self._closed = False
        lock = asyncio.Lock()
        self._not_empty = asyncio.Condition(lock)
        self._not_full = asyncio.Condition(lock)
        self.finished = asyncio.Event()  # closed, nothing queued, nothing held

    async def put(self, job: J) -> None:
        async with self._not_full:
            await self._not_full.wait_for(lambda: len(self._items) < self.maxsize)
            self._items.append(Entry(job))
            self._not_empty.notify()

    async def give_back(self, entry: Entry[J]) -> None:
        """A held job goes back, to the front (call `done` for it afterwards)."""
        async with self._not_empty:
            self._items.appendleft(entry)
            self._not_empty.notify()

    async def get(self) -> Entry[J] | None:
        """The next job (now held), or None when the run is over."""
        async with self._not_empty:
            await self._not_empty.wait_for(lambda: bool(self._items) or self.finished.is_set())
            if not self._items:
                return None
            self._held += 1
            if len(self._items) <= max(1, self.maxsize // 2):  # the feeder refills in batches:
                self._not_full.notify()  # it is not woken for every job taken
            return self._items.popleft()

    async def done(self) -> None:
        """A held job is finished (answered, failed for good, or handed back)."""
        self._held -= 1
        if self._closed and not self._held and not self._items:  # else nothing to wake
            async with self._not_empty:
                self._check_finished()

    async def close(self) -> None:
        """The feeder has put its last job."""
        async with self._not_empty:
            self._closed = True
            self._check_finished()

    def _check_finished(self) -> None:
        if self._closed and not self._held and not self._items:
            self.finished.set()
            self._not_empty.notify_all()

    async def feed(self, jobs: Iterable[J] | AsyncIterable[J]) -> None:
        if isinstance(jobs, AsyncIterable):  # e.g. the semantic stage, deciding as it goes
            async for job in jobs:
                await self.put(job)
        else:
            for job in jobs:
                await self.put(job)
        await self.close()


async def drain(queue: JobQueue[J], jobs: Iterable[J] | AsyncIterable[J],
                workers: list[Coroutine[Any, Any, None]]) -> None:
    """Feed `jobs` to `workers` until every job is done; the first error of any of them
    cancels the rest and is raised."""
    tasks = [asyncio.ensure_future(queue.feed(jobs)), *map(asyncio.ensure_future, workers)]
    end = asyncio.ensure_future(queue.finished.wait())
    try:
        while not end.done():
            done, _ = await asyncio.wait([end, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error
            tasks = [t for t in tasks if not t.done()]
    finally:
        for task in [end, *tasks]:
            task.cancel()
        await asyncio.gather(end, *tasks, return_exceptions=True)
