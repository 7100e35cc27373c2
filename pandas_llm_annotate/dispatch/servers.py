"""Several servers for one run (`base_url=[...]`): one scheduler each (its own limiter,
window, transport and answer format), all taking jobs from one queue. A worker takes
a job only when its server has room, so a server that answers fast takes more jobs and
a slow one fewer (work stealing).

A server that stops answering is set aside and its jobs go to the others:
- a connection refused before it ever answered, or ASIDE_AFTER transport errors in a
  row (refused or dropped connections, timeouts) with no answer between, sets it aside;
- a job whose request failed that way goes back to the queue, for whichever server
  has room, without using up `max_retries` (up to `scheduler.MAX_MOVES` moves); when a
  server is set aside its requests in flight are cancelled and go back too: none lost;
- after ASIDE_S (doubling after each failed probe, up to ASIDE_MAX_S) one request
  probes it; an answer brings it back.
When every server is set aside at once, the run ends with a ConnectError naming them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ..errors import ConnectError, ConnectionLost, RequestError, TransportError
from ..protocol.transport import Completion
from ..report.metrics import ServerStats
from .jobs import JobQueue, drain
from .request import FatalError
from .scheduler import Scheduler

J = TypeVar("J")
Complete = Callable[[dict[str, Any]], Awaitable[Completion]]
ASIDE_AFTER = 3  # transport errors in a row, with no answer between, that set a server aside
ASIDE_S = 2.0  # how long a server is first set aside before a probe
ASIDE_MAX_S = 30.0  # doubling after each failed probe, up to this


class Server:
    """One server's health and counters. `send` is its transport's `complete`, counted,
    and cancelled (`ConnectionLost`) when the server is set aside meanwhile."""

    def __init__(self, name: str, complete: Complete, stats: ServerStats, farm: Farm) -> None:
        self.name = name
        self.stats = stats
        self._complete = complete
        self._farm = farm
        self._answered = False  # it has answered (anything over HTTP) in this run
        self._in_row = 0  # transport errors since its last answer
        self._until: float | None = None  # set aside until then (None: in use)
        self._aside_s = ASIDE_S
        self._probing = False
        self._gone = asyncio.Event()  # set when it is set aside: requests in flight end
        self._changed = asyncio.Event()  # set (and replaced) when it is back or probed
        self.last_error: RequestError | None = None

    @property
    def aside(self) -> bool:
        return self._until is not None

    async def ready(self) -> None:
        """Return when a worker may take a job for this server: at once while it is in
        use; while it is set aside, when it is back, or to send the probe (one worker)."""
        while self._until is not None:
            wait = self._until - time.monotonic()
            if wait <= 0 and not self._probing:
                self._probing = True
                return
            changed = self._changed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), wait if wait > 0 else None)

    def moves(self, error: RequestError) -> bool:
        """A transport error: the job goes back to the queue, for whichever server has
        room (this one, set aside, takes none)."""
        return isinstance(error, TransportError)

    async def send(self, body: dict[str, Any], **options: Any) -> Completion:
        self.stats.requests += 1
        if not self._farm.several:  # alone: no one to hand jobs to, the scheduler retries
            return await self._complete(body, **options)
        try:
            completion = await self._unless_gone(self._complete(body, **options))
        except RequestError as exc:
            self.stats.errors += 1
            if isinstance(exc, TransportError):
                self._failed(exc)
            else:
                self._heard()
            raise
        self._heard()
        self.stats.answers += 1
        self.stats.latencies.append(completion.latency)
        return completion

    async def _unless_gone(self, request: Awaitable[Completion]) -> Completion:
        gone = self._gone
        task = asyncio.ensure_future(request)
        waiter = asyncio.ensure_future(gone.wait())
        try:
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            raise ConnectionLost(f"{self.name} was set aside (it stopped answering): the "
                                 "request goes to another server.")
        return task.result()

    def _heard(self) -> None:
        """It answered over HTTP (an answer or an error status): it is up."""
        self._answered = True
        self._in_row = 0
        if self._until is not None:
            self._until, self._probing, self._aside_s = None, False, ASIDE_S
            self._notify()

    def _failed(self, exc: TransportError) -> None:
        if self._until is not None:
            if self._probing:  # the probe failed
                self._set_aside(exc)
            return
        self.last_error = exc
        self._in_row += 1
        if self._in_row >= ASIDE_AFTER or (isinstance(exc, ConnectError) and not self._answered):
            self._set_aside(exc)

    def _set_aside(self, exc: TransportError) -> None:
        self.last_error = exc
        self.stats.set_aside += 1
        self._until = time.monotonic() + self._aside_s
        self._aside_s = min(ASIDE_MAX_S, 2 * self._aside_s)
        self._probing = False
        self._gone.set()  # requests in flight end: their jobs go elsewhere
        self._gone = asyncio.Event()
        self._notify()
        if self._farm.all_aside():
            raise FatalError(self._farm.down_error()) from exc

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class Farm:
    """The servers of one run, and the run of their schedulers over one queue."""

    def __init__(self, several: bool) -> None:
        self.several = several
        self.servers: list[Server] = []

    def add(self, name: str, complete: Complete, stats: ServerStats) -> Server:
        server = Server(name, complete, stats, self)
        self.servers.append(server)
        return server

    def all_aside(self) -> bool:
        return all(s.aside for s in self.servers)

    def down_error(self) -> ConnectError:
        said = "; ".join(f"{s.name}: {s.last_error}" for s in self.servers)
        return ConnectError(
            f"None of the {len(self.servers)} servers answers ({said}). Check that they are "
            "running and that base_url lists their addresses; the answers received so far "
            "are in the cache (unless cache=False), so a rerun asks only for the rest.")

    async def run(self, schedulers: list[Scheduler[J]],
                  jobs: Iterable[J] | AsyncIterable[J]) -> None:
        """Every job, sent by whichever server has room."""
        if len(schedulers) == 1:
            await schedulers[0].run(jobs)
            return
        queue: JobQueue[J] = JobQueue(maxsize=2 * sum(s.max_concurrency for s in schedulers))
        await drain(queue, jobs, [w for s in schedulers for w in s.workers(queue)])
