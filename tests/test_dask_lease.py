"""Leases from the cluster's coordinator, without a cluster: two worker processes'
stocks (`LeaseStock`) on one `Coordinator`, called directly instead of through a
distributed Actor. What one stock learns (a 429's pause, the limits in the headers)
holds for the other after its next lease call; the window is shared evenly."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pandas_llm_annotate.dask.coordinator import Coordinator
from pandas_llm_annotate.dask.lease import LeaseStock

DEADLINE_S = 5.0


class Done:
    """What an actor call returns: a future whose result is already there."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> Any:
        return self.value


class Direct:
    """The coordinator as a worker's Actor proxy calls it (one call at a time)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.lock = threading.Lock()

    def lease(self, *args: Any) -> Done:
        with self.lock:
            return Done(self.coordinator.lease(*args))


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.005)


@pytest.fixture
def stocks() -> Iterator[tuple[Coordinator, LeaseStock, LeaseStock]]:
    coordinator = Coordinator(max_concurrency=8, timeout=60)
    a, b = (LeaseStock(Direct(coordinator), max_concurrency=8, timeout=60) for _ in "ab")
    for stock in (a, b):
        stock.open_run(8)
    yield coordinator, a, b
    for stock in (a, b):
        stock.close_run(8)
        stock.stop()


def take(stock: LeaseStock) -> None:
    """One slot, once the keeper has leased some."""
    until(lambda: stock.acquire(1.0, time.monotonic()) == 0)


def test_a_429_on_one_worker_pauses_the_other(
        stocks: tuple[Coordinator, LeaseStock, LeaseStock]) -> None:
    _, a, b = stocks
    take(a)
    take(b)
    a.rate_limited(time.monotonic(), {"retry-after": "3"}, time.time())
    assert a.acquire(1.0, time.monotonic()) > 2.5  # at once where the 429 came
    b.succeeded(time.monotonic(), {}, time.time(), latency=0.01)  # b's next lease call
    until(lambda: 2.0 < b.acquire(1.0, time.monotonic()) < 3.5)  # the cluster's pause


def test_limits_learned_by_one_worker_hold_for_the_other(
        stocks: tuple[Coordinator, LeaseStock, LeaseStock]) -> None:
    coordinator, a, b = stocks
    take(a)
    quota = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
             "x-ratelimit-reset-requests": "1s"}  # 1 request/s, none left now
    a.succeeded(time.monotonic(), quota, time.time(), latency=0.01)
    until(lambda: coordinator.limiter.requests is not None)
    start = time.monotonic()
    take(b)  # waits for the cluster's bucket: about a second
    assert time.monotonic() - start > 0.5


def test_the_window_is_shared_evenly(
        stocks: tuple[Coordinator, LeaseStock, LeaseStock]) -> None:
    coordinator, a, b = stocks
    coordinator.limiter.learned = True  # past the probe: the window is 8
    for _ in range(8):
        until(lambda: a.acquire(1.0, time.monotonic()) == 0 or a.in_flight >= 8)
    assert a.in_flight + a.slots == 8  # alone, it may use the whole window
    assert b.acquire(1.0, time.monotonic()) == math.inf  # b asks: nothing left for now
    until(lambda: b.holder in coordinator.holders and coordinator.holders[b.holder].waiting)
    got = {"a": 0, "b": 0}

    def either() -> bool:  # both ask all the time, as busy workers do
        for name, stock in (("a", a), ("b", b)):
            if stock.acquire(1.0, time.monotonic()) == 0:
                got[name] += 1
                return True
        return False

    for _ in range(4):  # a's requests end: the freed slots go to b, up to half the window
        a.succeeded(time.monotonic(), {}, time.time(), latency=0.01)
        until(either)
    # All go to b: the coordinator saw b waiting before a's first slot came back
    assert got == {"a": 0, "b": 4}
    time.sleep(0.3)
    assert a.acquire(1.0, time.monotonic()) == math.inf  # a's share is taken
    assert (a.in_flight, b.in_flight, coordinator.limiter.in_flight) == (4, 4, 8)
    for _ in range(4):  # b is done: the whole window is free for a
        b.succeeded(time.monotonic(), {}, time.time(), latency=0.01)
    start = time.monotonic()
    for _ in range(4):
        until(lambda: a.acquire(1.0, time.monotonic()) == 0)
    assert time.monotonic() - start < 1.0 and a.in_flight == 8  # b is not waiting


class Gone:
    """An actor whose worker died: a call hangs until its timeout, then fails (as a
    distributed Actor's call to a killed worker does)."""

    def __init__(self, hang_s: float) -> None:
        self.hang_s = hang_s

    def lease(self, *args: Any) -> Gone:
        return self

    def result(self, timeout: float | None = None) -> Any:
        time.sleep(min(self.hang_s, timeout or self.hang_s))
        raise TimeoutError(f"timed out after {timeout} s.")


def test_a_coordinator_gone_during_the_last_report_shows_in_the_notice() -> None:
    """A run that ends on slots it already held, while the keeper's report to a dead
    coordinator still hangs: once stopped, the stock says the coordinator was gone."""
    coordinator = Coordinator(max_concurrency=8, timeout=60)
    stock = LeaseStock(Direct(coordinator), max_concurrency=8, timeout=60)
    stock.open_run(8)
    take(stock)
    stock.coordinator = Gone(hang_s=0.5)  # the coordinator's worker is killed
    stock.succeeded(time.monotonic(), {}, time.time(), latency=0.01)  # reported: hangs
    stock.close_run(8)
    assert stock.notice == ""  # the report is still on its way
    stock.stop()
    assert "rate coordinator could not be reached" in stock.notice
    assert not stock._thread.is_alive()


def test_stop_reports_the_last_outcomes_and_gives_back_the_slots() -> None:
    coordinator = Coordinator(max_concurrency=8, timeout=60)
    stock = LeaseStock(Direct(coordinator), max_concurrency=8, timeout=60)
    stock.open_run(8)
    take(stock)
    stock.succeeded(time.monotonic(), {}, time.time(), latency=0.01)
    stock.close_run(8)
    stock.stop()
    assert stock.notice == "" and stock.slots == 0 and not stock._thread.is_alive()
    assert coordinator.limiter.in_flight == 0 and coordinator.holders[stock.holder].out == 0
