"""Tasks waiting for a request slot, one future each (as aiolimiter does): woken when
a request ends, by any run that shares the limiter, even from another thread's loop.
No polling."""

from __future__ import annotations

import asyncio
import threading
from collections import deque

_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class Waiters:
    """A FIFO of blocked tasks for one shared limiter."""

    def __init__(self) -> None:
        self._queue: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._queue.append((loop, future))
        return future

    def discard(self, future: asyncio.Future[None]) -> None:
        with self._lock:
            self._queue = deque(w for w in self._queue if w[1] is not future)

    def wake(self, n: int = 1) -> None:
        """Wake the first `n` waiters still waiting."""
        while n > 0:
            with self._lock:
                if not self._queue:
                    return
                loop, future = self._queue.popleft()
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                _resolve(future)
            else:
                loop.call_soon_threadsafe(_resolve, future)
            n -= 1


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_by_limiter: dict[int, Waiters] = {}
_lock = threading.Lock()


def waiters_for(limiter: object) -> Waiters:
    """The waiters of one shared limiter (limiters live for the process)."""
    with _lock:
        return _by_limiter.setdefault(id(limiter), Waiters())
