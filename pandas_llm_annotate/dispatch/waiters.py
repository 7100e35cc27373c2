"""Tasks waiting for a request slot, one future each (as aiolimiter does): woken when
a request ends, by any run that shares the limiter, even from another thread's loop.
No polling."""

from __future__ import annotations

import asyncio
import threading
import weakref
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
        """Wake the first `n` waiters still waiting. A waiter already cancelled (its
        task is on its way out) is dropped and takes no wake: the next one gets it."""
        while n > 0:
            with self._lock:
                if not self._queue:
                    return
                loop, future = self._queue.popleft()
            if loop.is_closed() or future.done():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                future.set_result(None)
            else:
                loop.call_soon_threadsafe(self._resolve, future)
            n -= 1

    def _resolve(self, future: asyncio.Future[None]) -> None:
        """In the waiter's own loop; cancelled meanwhile: the wake goes on to the next."""
        if future.done():
            self.wake()
        else:
            future.set_result(None)


_by_limiter: dict[int, Waiters] = {}
_lock = threading.RLock()  # re-entrant: a collection inside it may run `_forget`


def waiters_for(limiter: object) -> Waiters:
    """The waiters of one shared limiter, dropped with it (so a new limiter that
    reuses its id starts with none)."""
    key = id(limiter)
    with _lock:
        found = _by_limiter.get(key)
        if found is None:
            found = _by_limiter[key] = Waiters()
            weakref.finalize(limiter, _forget, key)
        return found


def _forget(key: int) -> None:
    with _lock:
        _by_limiter.pop(key, None)
