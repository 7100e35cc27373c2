"""The scheduler alone: a fake `send` coroutine (no HTTP) over a real limiter.

Every run is bounded by `HANG_S`, so a lost wake fails the test instead of hanging it.
Steps are ordered with events; the few sleeps only let time pass where the point is
that nothing happens meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import random
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from pandas_llm_annotate.dispatch.scheduler import FatalError, Request, Scheduler
from pandas_llm_annotate.dispatch.waiters import Waiters, waiters_for
from pandas_llm_annotate.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectError,
    RateLimitError,
    ReadTimeout,
    RequestError,
    ServerError,
)
from pandas_llm_annotate.protocol.transport import Completion
from pandas_llm_annotate.ratelimit.limiter import Limiter
from pandas_llm_annotate.ratelimit.run_limits import RunLimits
from pandas_llm_annotate.report.metrics import Metrics

HANG_S = 10.0  # far above any run here: reaching it means a worker was never woken
T = TypeVar("T")
Send = Callable[[dict[str, Any]], Awaitable[Completion]]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, HANG_S))


async def until(condition: Callable[[], bool]) -> None:
    """Let the scheduler's tasks run until `condition` holds (the test's side only)."""
    deadline = time.monotonic() + HANG_S
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.001)


class NoJitter(random.Random):
    """Backoff draws its lowest value, 0: retries go at once."""

    def uniform(self, a: float, b: float) -> float:
        return a


class Counted(RunLimits):
    """RunLimits counting acquire() calls, and the refusals that wait for a release."""

    calls = 0
    refused = 0

    def acquire(self, cost: float, now: float) -> float:
        wait = super().acquire(cost, now)
        self.calls += 1
        self.refused += math.isinf(wait)
        return wait


def limits(*, shared: Limiter | None = None, window: int | None = None,
           max_concurrency: int = 4, timeout: float | None = None) -> Counted:
    """A run's limits; `window`: the shared limiter lets that many in flight."""
    shared = shared or Limiter(max_concurrency=max_concurrency)
    if window is not None:
        shared.window.queue_cap = window  # as if the server had shown it queues past that
    return Counted(shared, max_concurrency=max_concurrency, timeout=timeout)


def waiters(lim: RunLimits) -> Waiters:
    return waiters_for(lim.shared)


def request(job: str, form: str = "plain") -> Request[str]:
    return Request(job=job, body={"job": job, "form": form}, prompt_estimate=10, max_tokens=5,
                   form=form)


def answer() -> Completion:
    return Completion(content="ok", latency=0.01)


class Recorder:
    """What the scheduler reported: answered jobs, failed jobs with their errors."""

    def __init__(self) -> None:
        self.answered: list[str] = []
        self.failed: dict[str, RequestError] = {}

    def on_answer(self, job: str, completion: Completion) -> Sequence[str]:
        self.answered.append(job)
        return ()

    def on_failure(self, job: str, error: RequestError) -> None:
        self.failed[job] = error


def scheduler(send: Send, lim: RunLimits, rec: Recorder, *, workers: int = 4,
              max_retries: int = 3, **hooks: Any) -> Scheduler[str]:
    return Scheduler(
        prepare=hooks.pop("prepare", request), send=send,
        on_answer=hooks.pop("on_answer", rec.on_answer), on_failure=rec.on_failure,
        limiter=lim, metrics=Metrics(), max_concurrency=workers, max_retries=max_retries,
        rng=NoJitter(), **hooks,
    )


def balanced(lim: RunLimits, sched: Scheduler[str]) -> bool:
    """Nothing left counted in flight, nobody left waiting."""
    return (lim.in_flight == 0 and lim.shared.in_flight == 0 and sched.metrics.in_flight == 0
            and len(waiters(lim)) == 0)


async def forever() -> None:
    await asyncio.Event().wait()


# -- retries ----------------------------------------------------------------------------------


def test_retryable_errors_are_retried_up_to_max_retries_then_reported() -> None:
    sent: Counter[str] = Counter()

    async def send(body: dict[str, Any]) -> Completion:
        sent[body["job"]] += 1
        if body["job"] == "flaky" and sent["flaky"] == 1:
            raise ServerError("HTTP 503", status=503)
        if body["job"] == "broken":
            raise ServerError("HTTP 500", status=500)
        if body["job"] == "refused":
            raise BadRequestError("HTTP 400", status=400)
        return answer()

    lim, rec = limits(), Recorder()
    sched = scheduler(send, lim, rec, max_retries=2)
    with lim:
        run(sched.run(["good", "flaky", "broken", "refused"]))
    assert sent == {"good": 1, "flaky": 2, "broken": 3, "refused": 1}  # 400: never retried
    assert sorted(rec.answered) == ["flaky", "good"]
    assert {job: type(e) for job, e in rec.failed.items()} == {
        "broken": ServerError, "refused": BadRequestError}
    assert sched.metrics.requests == 4 and sched.metrics.retries == 3
    assert balanced(lim, sched)


def test_429s_that_name_a_wait_do_not_use_up_retries() -> None:
    sent: Counter[str] = Counter()

    async def send(body: dict[str, Any]) -> Completion:
        job = body["job"]
        sent[job] += 1
        if job == "named" and sent[job] <= 3:
            raise RateLimitError("HTTP 429", status=429, headers={"retry-after": "0.1"})
        if job == "unnamed":
            raise RateLimitError("HTTP 429", status=429)
        return answer()

    for job, answered in (("named", ["named"]), ("unnamed", [])):
        lim, rec = limits(), Recorder()
        sched = scheduler(send, lim, rec, workers=1, max_retries=0)
        with lim:
            run(sched.run([job]))
        assert rec.answered == answered
        assert balanced(lim, sched)
    assert sent == {"named": 4, "unnamed": 1}  # three paced 429s, then the answer


def test_reformat_prepares_the_job_again_and_never_resends_a_rejected_body() -> None:
    form = {"now": "json_schema"}
    prepared: list[str] = []
    bodies: list[dict[str, Any]] = []

    def prepare(job: str) -> Request[str]:
        prepared.append(job)
        return request(job, form["now"])

    def reformat(req: Request[str], error: RequestError) -> bool:
        if isinstance(error, BadRequestError) and req.form == "json_schema":
            form["now"] = "plain"  # the server refused the schema: a weaker form from now on
            return True
        return False

    async def send(body: dict[str, Any]) -> Completion:
        bodies.append(body)
        if body["form"] == "json_schema":
            raise BadRequestError("HTTP 400: response_format", status=400)
        return answer()

    lim, rec = limits(), Recorder()
    sched = scheduler(send, lim, rec, workers=1, max_retries=0, prepare=prepare,
                      reformat=reformat)
    with lim:
        run(sched.run(["a", "b"]))
    assert bodies == [{"job": "a", "form": "json_schema"}, {"job": "a", "form": "plain"},
                      {"job": "b", "form": "plain"}]
    assert len({json.dumps(b, sort_keys=True) for b in bodies}) == len(bodies)
    assert prepared == ["a", "a", "b"]
    assert rec.answered == ["a", "b"] and not rec.failed  # max_retries=0: no retry used
    assert balanced(lim, sched)


def test_a_job_waiting_for_admission_is_rebuilt_when_a_refusal_came_meanwhile() -> None:
    """Two workers, a window of one: "b" is prepared with the schema, then waits while
    "a"'s schema is refused; when admitted it goes in the weaker form, never as refused."""
    form = {"now": "json_schema"}
    bodies: list[dict[str, Any]] = []

    def prepare(job: str) -> Request[str]:
        return request(job, form["now"])

    def reformat(req: Request[str], error: RequestError) -> bool:
        if req.form == "json_schema" and form["now"] == "json_schema":
            form["now"] = "plain"
        return req.form == "json_schema"

    def refresh(req: Request[str]) -> Request[str]:
        return req if req.form == form["now"] else prepare(req.job)

    async def send(body: dict[str, Any]) -> Completion:
        bodies.append(body)
        await asyncio.sleep(0.01)  # "b" is prepared and waiting by now
        if body["form"] == "json_schema":
            raise BadRequestError("HTTP 400: response_format", status=400)
        return answer()

    lim, rec = limits(window=1), Recorder()
    sched = scheduler(send, lim, rec, workers=2, max_retries=0, prepare=prepare,
                      reformat=reformat, refresh=refresh)
    with lim:
        run(sched.run(["a", "b"]))
    assert bodies[0] == {"job": "a", "form": "json_schema"}
    assert all(b["form"] == "plain" for b in bodies[1:]) and len(bodies) == 3
    assert sorted(rec.answered) == ["a", "b"] and not rec.failed
    assert balanced(lim, sched)


# -- fatal errors -----------------------------------------------------------------------------


def test_an_authentication_error_is_raised_once_and_cancels_the_rest() -> None:
    others_in = asyncio.Event()
    in_send: set[str] = set()
    cancelled: list[str] = []

    async def send(body: dict[str, Any]) -> Completion:
        job = body["job"]
        in_send.add(job)
        if job in ("j0", "j1"):  # two refusals at once still make one error
            await others_in.wait()
            raise AuthenticationError("HTTP 401: bad key", status=401)
        if len(in_send) == 4:
            others_in.set()
        try:
            await forever()
        except asyncio.CancelledError:
            cancelled.append(job)
            raise
        return answer()

    lim, rec = limits(), Recorder()
    sched = scheduler(send, lim, rec, workers=4)
    with lim, pytest.raises(FatalError) as info:
        run(sched.run([f"j{i}" for i in range(10)]))
    assert isinstance(info.value.error, AuthenticationError)
    assert in_send == {"j0", "j1", "j2", "j3"}  # the rest were never sent
    assert sorted(cancelled) == ["j2", "j3"]
    assert not rec.failed and not rec.answered
    assert balanced(lim, sched)


def test_a_connect_error_is_fatal_only_before_any_success() -> None:
    sent: Counter[str] = Counter()

    async def send(body: dict[str, Any]) -> Completion:
        sent[body["job"]] += 1
        if body["job"] == "down" or (body["job"] == "blip" and sent["blip"] == 1):
            raise ConnectError("connection refused")
        return answer()

    lim, rec = limits(), Recorder()
    sched = scheduler(send, lim, rec, workers=1)
    with lim, pytest.raises(FatalError) as info:
        run(sched.run(["down", "ok"]))
    assert isinstance(info.value.error, ConnectError)
    assert sent == {"down": 1} and balanced(lim, sched)

    lim, rec = limits(), Recorder()
    sched = scheduler(send, lim, rec, workers=1)
    with lim:
        run(sched.run(["ok", "blip"]))  # one answer came: the server exists, a blip is retried
    assert rec.answered == ["ok", "blip"] and sent["blip"] == 2
    assert balanced(lim, sched)


# -- follow-ups -------------------------------------------------------------------------------


def test_follow_up_jobs_from_on_answer_are_sent() -> None:
    sent: list[str] = []

    async def send(body: dict[str, Any]) -> Completion:
        sent.append(body["job"])
        return answer()

    rec = Recorder()

    def on_answer(job: str, completion: Completion) -> Sequence[str]:
        rec.on_answer(job, completion)
        return (f"{job}/a", f"{job}/b") if job == "pack" else ()  # rows to ask again alone

    lim = limits()
    sched = scheduler(send, lim, rec, workers=2, on_answer=on_answer)
    with lim:
        run(sched.run(["pack", "solo"]))
    assert sorted(sent) == ["pack", "pack/a", "pack/b", "solo"]
    assert sorted(rec.answered) == sorted(sent)
    assert balanced(lim, sched)


# -- waiting for a slot -----------------------------------------------------------------------


def test_cancelled_while_waiting_for_a_slot() -> None:
    in_send = asyncio.Event()
    cancelled: list[str] = []

    async def send(body: dict[str, Any]) -> Completion:
        in_send.set()
        try:
            await forever()
        except asyncio.CancelledError:
            cancelled.append(body["job"])
            raise
        return answer()

    lim, rec = limits(window=1), Recorder()
    sched = scheduler(send, lim, rec, workers=3)

    async def main() -> None:
        task = asyncio.ensure_future(sched.run(["a", "b", "c", "d"]))
        await in_send.wait()
        await until(lambda: len(waiters(lim)) == 2)  # the other two wait for the slot
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with lim:
        run(main())
    assert cancelled == ["a"]
    assert balanced(lim, sched)


def test_a_release_from_another_scheduler_wakes_a_waiter() -> None:
    shared = Limiter(max_concurrency=2)
    first, second = limits(shared=shared, window=1), limits(shared=shared, window=1)
    in_send, go = asyncio.Event(), asyncio.Event()
    sent: list[str] = []

    async def send(body: dict[str, Any]) -> Completion:
        sent.append(body["job"])
        if body["job"] == "long":
            in_send.set()
            await go.wait()
        return answer()

    one = scheduler(send, first, Recorder(), workers=2)
    two = scheduler(send, second, Recorder(), workers=2)

    async def main() -> None:
        a = asyncio.ensure_future(one.run(["long"]))
        await in_send.wait()
        b = asyncio.ensure_future(two.run(["short"]))
        await until(lambda: len(waiters(second)) == 1)
        assert sent == ["long"]  # the window is full: "short" waits for a release
        go.set()  # only the first scheduler's release can wake it
        await asyncio.gather(a, b)

    with first, second:
        run(main())
    assert sent == ["long", "short"]
    assert second.refused >= 1 and second.calls <= 4
    assert balanced(first, one) and balanced(second, two)


def test_a_waiter_cancelled_ahead_of_another_does_not_swallow_its_wake() -> None:
    """Two runs share a window of one; the run whose waiter is first in line is cancelled
    just as the slot frees: the wake goes to the next waiter, not to the cancelled one."""
    shared = Limiter(max_concurrency=2)
    mine, other = limits(shared=shared, window=1), limits(shared=shared, window=1)
    in_send, release, other_waits = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def send(body: dict[str, Any]) -> Completion:
        if body["job"] == "x":
            in_send.set()
            await release.wait()
        return answer()

    async def jobs() -> AsyncIterator[str]:
        yield "x"
        await other_waits.wait()
        yield "y"  # queued behind the other run's waiter

    rec = Recorder()
    sched = scheduler(send, mine, rec, workers=2)
    cancelled = scheduler(send, other, Recorder(), workers=1)

    async def main() -> None:
        task = asyncio.ensure_future(sched.run(jobs()))
        await in_send.wait()
        doomed = asyncio.ensure_future(cancelled.run(["z"]))
        await until(lambda: len(waiters(mine)) == 1)
        other_waits.set()
        await until(lambda: len(waiters(mine)) == 2)
        doomed.cancel()  # its waiter's future is cancelled first...
        release.set()  # ...then "x" ends and wakes the first in line
        await task
        with pytest.raises(asyncio.CancelledError):
            await doomed

    with mine, other:
        run(main())
    assert sorted(rec.answered) == ["x", "y"]
    assert balanced(mine, sched) and balanced(other, cancelled)


def test_no_busy_polling_while_workers_wait() -> None:
    in_send, go = asyncio.Event(), asyncio.Event()

    async def send(body: dict[str, Any]) -> Completion:
        if body["job"] == "0":
            in_send.set()
            await go.wait()
        return answer()

    lim, rec = limits(window=1), Recorder()
    sched = scheduler(send, lim, rec, workers=4)
    jobs = [str(i) for i in range(8)]

    async def main() -> None:
        task = asyncio.ensure_future(sched.run(jobs))
        await in_send.wait()
        await until(lambda: len(waiters(lim)) == 3)
        before = lim.calls
        await asyncio.sleep(0.3)  # three workers blocked all along
        assert lim.calls == before  # no acquire() while they wait
        go.set()
        await task

    with lim:
        run(main())
    assert sorted(rec.answered) == jobs
    assert lim.calls <= 3 * len(jobs)
    assert balanced(lim, sched)


def test_a_timed_out_request_does_not_leave_its_retry_waiting_forever() -> None:
    """A request that timed out stays counted (a ghost) while the server likely still
    works on it; the ghost leaves with time, not with a release, so the retry must
    wait for that time rather than for a wake that never comes."""
    sent: Counter[str] = Counter()

    async def send(body: dict[str, Any]) -> Completion:
        sent[body["job"]] += 1
        if sent[body["job"]] == 1:
            raise ReadTimeout("no answer", elapsed=0.2)
        return answer()

    lim, rec = limits(max_concurrency=2, timeout=1.0), Recorder()
    sched = scheduler(send, lim, rec, workers=2)
    start = time.monotonic()
    with lim:
        run(sched.run(["a"]))
    assert rec.answered == ["a"] and sent["a"] == 2
    assert time.monotonic() - start >= 0.15  # the retry waited for the ghost to leave
    assert balanced(lim, sched)


# -- waiters ----------------------------------------------------------------------------------


def test_a_dropped_limiter_drops_its_waiters() -> None:
    """Waiters are found by the limiter; a limiter gone does not leave them behind
    (nor hand them to a new limiter that happens to reuse its id)."""

    def make() -> weakref.ref[Waiters]:
        return weakref.ref(waiters_for(Limiter(max_concurrency=1)))

    found = make()
    gc.collect()
    assert found() is None
