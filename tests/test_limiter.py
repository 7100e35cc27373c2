"""The limiter is pure policy: driven here with a fake clock, never with sleeps."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from pandas_llm_annotate.dispatch.retry import backoff, is_fatal
from pandas_llm_annotate.errors import (
    AuthenticationError,
    ConnectError,
    NotFoundError,
    ServerError,
)
from pandas_llm_annotate.ratelimit.bucket import Bucket
from pandas_llm_annotate.ratelimit.headers import (
    MAX_WAIT_S,
    go_duration,
    read_quotas,
    reset_seconds,
    retry_after,
)
from pandas_llm_annotate.ratelimit.limiter import MAX_FLOOR, MIN_PAUSE, PROBE_WINDOW, Limiter
from pandas_llm_annotate.ratelimit.registry import shared_limiter
from pandas_llm_annotate.ratelimit.run_limits import RunLimits
from pandas_llm_annotate.ratelimit.timeout_guard import TimeoutGuard
from pandas_llm_annotate.ratelimit.window import Window

EPOCH = 1_700_000_000.0


def openai_headers(rpm: int, left: int, reset: str, tpm: int = 0, tleft: int = 0,
                   treset: str = "0s") -> dict[str, str]:
    h = {
        "x-ratelimit-limit-requests": str(rpm),
        "x-ratelimit-remaining-requests": str(left),
        "x-ratelimit-reset-requests": reset,
    }
    if tpm:
        h |= {
            "x-ratelimit-limit-tokens": str(tpm),
            "x-ratelimit-remaining-tokens": str(tleft),
            "x-ratelimit-reset-tokens": treset,
        }
    return h


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("1.2s", 1.2), ("12ms", 0.012), ("1h2m3s", 3723.0), ("0s", 0.0),
     ("250us", 0.00025), ("1m30.5s", 90.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1.2", "5 s", "s1"])
def test_not_go_durations(text: str) -> None:
    assert go_duration(text) is None


def test_reset_seconds_forms() -> None:
    assert reset_seconds("1.5s", EPOCH) == 1.5
    assert reset_seconds("7", EPOCH) == 7.0
    # Anthropic: an RFC 3339 date
    assert reset_seconds("2023-11-14T22:13:30Z", EPOCH) == pytest.approx(10.0)
    assert reset_seconds("soon", EPOCH) is None


def test_retry_after_prefers_ms_then_seconds_then_date() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}, EPOCH) == 0.25
    assert retry_after({"Retry-After": "3"}, EPOCH) == 3.0
    assert retry_after({"retry-after": "Tue, 14 Nov 2023 22:13:40 GMT"}, EPOCH) == (
        pytest.approx(20.0)
    )
    assert retry_after({"retry-after": "later"}, EPOCH) is None
    assert retry_after({}, EPOCH) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("2.5", 2.5), ("999999", 999999.0), ("-5", None), ("nan", None),
     ("-inf", None), ("inf", MAX_WAIT_S), ("1e309", MAX_WAIT_S), ("1e12", MAX_WAIT_S),
     ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_WAIT_S), ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),
     ("9" * 100, None), ("", None)],
)
def test_retry_after_values_are_validated_and_clamped(value: str, seconds: float | None) -> None:
    """Hostile `retry-after` values: negative and `nan` say nothing; `inf`, a far date or
    a huge number read as a year (the scheduler then ends the run); the past is now."""
    assert retry_after({"retry-after": value}, EPOCH) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("2500", 2.5), ("-5", 7.0), ("nan", 7.0), ("inf", MAX_WAIT_S),
     ("1e300", MAX_WAIT_S), ("soon", 7.0)],
)
def test_retry_after_ms_values_are_validated(value: str, seconds: float) -> None:
    """The same rules in milliseconds; an unusable one falls back to `retry-after`."""
    assert retry_after({"retry-after-ms": value, "retry-after": "7"}, EPOCH) == seconds


@pytest.mark.parametrize("value", ["-3", "nan", "inf", "-inf", "1e309", "x" * 100])
def test_hostile_resets_are_ignored(value: str) -> None:
    assert reset_seconds(value, EPOCH) is None


@pytest.mark.parametrize("limit", ["0", "-5", "0.001", "1e-300", "nan", "inf", "0.5"])
def test_a_limit_under_one_a_minute_or_not_finite_is_ignored(limit: str) -> None:
    headers = {"x-ratelimit-limit-requests": limit, "x-ratelimit-remaining-requests": "0",
               "x-ratelimit-limit-tokens": limit}
    assert read_quotas(headers, EPOCH) == {}


def test_remaining_is_clamped_to_zero_and_the_limit() -> None:
    def left(value: str) -> float | None:
        q = read_quotas({"x-ratelimit-limit-requests": "60",
                         "x-ratelimit-remaining-requests": value}, EPOCH)
        return q["requests"].remaining

    assert left("-5") == 0 and left("-1e300") == 0
    assert left("1e12") == 60 and left("30") == 30
    assert left("nan") is None and left("inf") is None


@pytest.mark.parametrize(
    "headers",
    [openai_headers(1, -1_000_000_000, "1s", tpm=1, tleft=-5, treset="999999h"),
     {"x-ratelimit-limit-requests": "0.001", "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-limit-tokens": "1e-300", "x-ratelimit-remaining-tokens": "0"},
     openai_headers(1, 0, "999999999s", tpm=1, tleft=0, treset="99999h")],
)
def test_hostile_quota_headers_never_make_a_wait_over_a_minute(headers: dict[str, str]) -> None:
    """Negative remaining, tiny limits, absurd resets: at worst the pace of the smallest
    limit read (1 a minute), never a stall."""
    lim = Limiter(max_concurrency=8)
    assert lim.acquire(1, 0.0) == 0
    lim.succeeded(0.1, headers, EPOCH)
    wait = lim.acquire(5000, 0.1)
    assert 0 <= wait <= 60.0
    assert lim.acquire(5000, 0.1 + wait) == 0
    assert lim.rate_limited(0.2 + wait, headers, EPOCH) <= 60.0


def test_a_wait_over_max_wait_is_returned_but_not_taken() -> None:
    """A daily quota (`retry-after: 999999`): the run ends (the scheduler's call), and the
    shared limiter is not left paused for the runs after it."""
    lim = Limiter(max_concurrency=8)
    lim.acquire(1, 0.0)
    assert lim.rate_limited(0.0, {"retry-after": "999999"}, EPOCH, max_wait=300) == 999999
    assert lim.acquire(1, 0.01) == 0
    assert lim.rate_limited(0.01, {"retry-after": "20"}, EPOCH, max_wait=300) == 20
    assert 19.9 <= lim.acquire(1, 0.02) <= 20.1  # a wait under max_wait holds everyone


def test_a_zero_retry_after_is_floored_and_doubles_per_burst() -> None:
    """`retry-after: 0` on every answer: each burst of 429s (one coming after the last
    pause ended) pauses twice as long, up to MAX_FLOOR; an answer starts over."""
    lim = Limiter(max_concurrency=8, rng=random.Random(0))
    now, pauses = 0.0, []
    for _ in range(10):
        for _ in range(3):  # three requests of one burst, all refused
            assert lim.acquire(1, now) == 0
        for _ in range(3):
            assert lim.rate_limited(now, {"retry-after": "0"}, EPOCH) == 0.0
        pause = lim.acquire(1, now)
        pauses.append(pause)
        now += pause
    expected = [min(MAX_FLOOR, MIN_PAUSE * 2 ** i) for i in range(10)]
    assert pauses == pytest.approx(expected, abs=0.021)
    assert lim.acquire(1, now) == 0
    lim.succeeded(now, {}, EPOCH)
    assert lim.acquire(1, now) == 0
    lim.rate_limited(now, {"retry-after": "0"}, EPOCH)
    assert lim.acquire(1, now) == pytest.approx(MIN_PAUSE, abs=0.021)
    for _ in range(8):  # a floor never outgrows the run's max_wait
        now += 10
        lim.acquire(1, now)
        lim.rate_limited(now, {"retry-after": "0"}, EPOCH, max_wait=0.5)
    assert lim.acquire(1, now) == pytest.approx(0.5, abs=0.021)


def test_read_quotas_openai_and_anthropic() -> None:
    q = read_quotas(openai_headers(2400, 39, "25ms", 100000, 99000, "600ms"), EPOCH)
    assert q["requests"].per_minute == 2400 and q["requests"].remaining == 39
    assert q["requests"].reset_s == pytest.approx(0.025)
    assert q["tokens"].per_minute == 100000 and q["tokens"].reset_s == pytest.approx(0.6)
    a = read_quotas({
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:21Z",
    }, EPOCH)
    assert a["requests"].per_minute == 50 and a["requests"].reset_s == pytest.approx(1.0)
    assert read_quotas({"x-ratelimit-limit-requests": "lots"}, EPOCH) == {}


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(1)
    draws = [backoff(10, base=0.5, cap=20, rng=rng) for _ in range(2000)]
    assert 0 <= min(draws) < 1 and 19 < max(draws) <= 20
    assert all(0 <= backoff(0, base=0.5, rng=rng) <= 0.5 for _ in range(100))


def test_fatal_errors() -> None:
    assert is_fatal(AuthenticationError("x", status=401), any_success=True)
    assert is_fatal(NotFoundError("x", status=404), any_success=True)
    assert is_fatal(ConnectError("x"), any_success=False)
    assert not is_fatal(ConnectError("x"), any_success=True)
    assert not is_fatal(ServerError("x", status=500), any_success=False)


def test_bucket_refills_and_waits() -> None:
    b = Bucket.per_minute(600, 1.0, now=0.0)  # 10/s, capacity 10
    assert b.capacity == 10
    for _ in range(10):
        assert b.wait(1, 0.0) == 0
        b.take(1)
    assert b.wait(1, 0.0) == pytest.approx(0.1)
    assert b.wait(1, 0.1) == pytest.approx(0.0)
    assert b.wait(50, 0.1) == pytest.approx(0.9)  # above capacity: waits for a full bucket


def test_window_aimd() -> None:
    w = Window(cap=64, size=64.0)
    assert w.cut(10.0) and w.limit == 32
    assert not w.cut(10.5)  # same burst of errors: one signal
    assert w.cut(11.5) and w.limit == 16
    for _ in range(17):
        w.grow()
    assert w.limit == 17  # about +1 per window's worth of successes
    for _ in range(10_000):
        w.grow()
    assert w.limit == 64


def test_probe_window_until_first_answer() -> None:
    lim = Limiter(max_concurrency=64)
    admitted = sum(lim.acquire(1, 0.0) == 0 for _ in range(100))
    assert admitted == PROBE_WINDOW
    assert lim.acquire(1, 0.0) == math.inf
    lim.succeeded(0.3, {}, EPOCH)  # no rate headers: the full window opens
    admitted = sum(lim.acquire(1, 0.3) == 0 for _ in range(100))
    assert lim.in_flight == 64 and admitted == 64 - (PROBE_WINDOW - 1)


def test_learns_limits_from_headers_and_paces() -> None:
    lim = Limiter(max_concurrency=64)
    assert lim.acquire(1, 0.0) == 0
    # 2,400 RPM with a 1 s bucket: 39 left and 25 ms to full → capacity 40, 40/s
    lim.succeeded(0.3, openai_headers(2400, 39, "25ms"), EPOCH)
    assert lim.requests is not None
    assert lim.requests.rate == pytest.approx(40)
    assert lim.requests.capacity == pytest.approx(40)
    now, sent = 0.3, 0
    while now < 10.3:  # ten seconds of fake time, answers come back at once
        if lim.acquire(1, now) == 0:
            sent += 1
            lim.succeeded(now, {}, EPOCH)
        else:
            now += 0.001
    assert 39 + 400 - 2 <= sent <= 39 + 400 + 1  # the bucket's depth plus 40/s, no more


def test_429_pauses_everyone_until_named_reset() -> None:
    lim = Limiter(max_concurrency=8)
    lim.acquire(1, 0.0)
    lim.succeeded(0.1, {}, EPOCH)
    assert lim.acquire(1, 1.0) == 0
    pause = lim.rate_limited(1.0, {"retry-after-ms": "1500"}, EPOCH)
    assert pause == 1.5
    wait = lim.acquire(1, 1.1)
    assert 1.39 <= wait <= 1.43
    assert lim.acquire(1, 2.53) == 0


def test_429_with_quota_headers_drains_bucket() -> None:
    lim = Limiter(max_concurrency=8)
    lim.acquire(1, 0.0)
    lim.succeeded(0.1, openai_headers(600, 9, "100ms"), EPOCH)
    lim.acquire(1, 0.2)
    pause = lim.rate_limited(0.2, openai_headers(600, 0, "1s"), EPOCH)
    assert pause == pytest.approx(0.1, abs=0.02)  # time for one request to drip in
    assert lim.requests is not None and lim.requests.level <= 0.01


def test_headerless_429_guesses_rate_and_grows_back() -> None:
    lim = Limiter(max_concurrency=64)
    lim.acquire(1, 0.0)
    lim.succeeded(0.3, {}, EPOCH)
    for i in range(40):  # 40 answers in the last second, 10 still in flight
        lim.acquire(1, 0.3)
        lim.succeeded(0.3 + i / 40, {}, EPOCH)
    for _ in range(11):
        lim.acquire(1, 1.3)
    pause = lim.rate_limited(1.3, {}, EPOCH)
    assert lim.requests is not None
    guessed = lim.requests.rate
    assert guessed == pytest.approx(0.75 * (40 + 10), rel=0.05)
    assert 0.25 <= pause <= 0.5
    assert lim.rate_limited(1.35, {}, EPOCH) == 0.0  # same burst: no second cut
    assert lim.requests.rate == guessed
    for _ in range(100):
        lim.succeeded(2.0, {}, EPOCH)
    assert lim.requests.rate > guessed  # additive increase


def test_a_runs_rpm_is_the_tighter_limit_and_ends_with_the_run() -> None:
    shared = Limiter(max_concurrency=8)
    with RunLimits(shared, max_concurrency=8, rpm=60) as run:
        assert run.limit == 8  # paced by its own rpm: no probe needed
        assert run.acquire(1, 0.0) == 0
        run.succeeded(0.1, openai_headers(6000, 99, "1s"), EPOCH)  # the server allows more
        assert run.acquire(1, 0.2) == pytest.approx(0.8)  # the run's 1/s holds
    assert shared.requests is not None and shared.requests.rate == pytest.approx(100.0)
    with RunLimits(shared, max_concurrency=8) as later:  # no rpm: the server's rate
        for i in range(50):
            assert later.acquire(1, 1.0 + i * 0.001) == 0
            later.succeeded(1.0 + i * 0.001, {}, EPOCH)


def test_a_runs_max_concurrency_does_not_shrink_another_run() -> None:
    shared = Limiter(max_concurrency=64)
    with RunLimits(shared, max_concurrency=64) as wide:
        for _ in range(10):
            assert wide.acquire(1, 0.0) == 0
        with RunLimits(shared, max_concurrency=2) as narrow:
            assert narrow.limit == 2
            assert narrow.acquire(1, 0.0) == 0 and narrow.acquire(1, 0.0) == 0
            assert math.isinf(narrow.acquire(1, 0.0))
            assert wide.limit == PROBE_WINDOW  # still the probe, not 2
            assert wide.acquire(1, 0.0) == 0
    assert shared.window.cap == 64


def test_token_bucket_and_usage_correction() -> None:
    shared = Limiter(max_concurrency=8)
    lim = RunLimits(shared, max_concurrency=8, tpm=6000)  # 100 tokens/s, capacity 100
    assert lim.cost(50, 30) == 80
    assert lim.acquire(80, 0.0) == 0
    assert lim.acquire(80, 0.0) == pytest.approx(0.6)
    for _ in range(30):  # the server counts twice our estimate
        lim.succeeded(0.1, {}, EPOCH, prompt_estimate=50, prompt_tokens=100)
    assert lim.cost(50, 30) == pytest.approx(130, rel=0.02)


def test_overload_cuts_window() -> None:
    lim = Limiter(max_concurrency=64)
    lim.acquire(1, 0.0)
    lim.succeeded(0.1, {}, EPOCH)
    lim.acquire(1, 1.0)
    lim.failed(1.0, overload=True)
    assert lim.window.limit == 32
    lim.acquire(1, 1.1)
    lim.failed(1.1, overload=False)
    assert lim.window.limit == 32


def drive_faults(lim: Limiter, *, fault_rate: Any, answers: int, seed: int) -> list[int]:
    """A fake server answering every request 0.1 s later; each fails (a reset, a 500: not
    overload by itself) with probability `fault_rate(in_flight)`. Returns the window
    after each answer."""
    rng = random.Random(seed)
    now, windows = 0.0, []
    while len(windows) < answers:
        while lim.acquire(1, now) == 0:
            pass
        busy = lim.in_flight
        now += 0.1
        for _ in range(busy):  # a round: every request in flight ends
            if rng.random() < fault_rate(busy):
                lim.failed(now, overload=False, fault=True)
            else:
                lim.succeeded(now, {}, EPOCH)
            windows.append(lim.window.limit)
    return windows


@pytest.mark.parametrize("rate", [0.05, 0.20])
def test_random_faults_keep_the_window_near_its_cap(rate: float) -> None:
    """Isolated faults among successes are not overload (before, each reset halved the
    window, once a second: 20 % faults held it near 8 of 64)."""
    lim = Limiter(max_concurrency=64)
    windows = drive_faults(lim, fault_rate=lambda busy: rate, answers=20_000, seed=1)
    assert min(windows[100:]) >= 32
    assert sum(windows) / len(windows) >= 0.95 * 64


def test_faults_that_cluster_under_load_still_cut() -> None:
    """A server with 16 slots that resets what it cannot take: most requests fail at 64
    in flight, so the faults cluster and the window comes down to about its capacity."""
    lim = Limiter(max_concurrency=64)
    windows = drive_faults(lim, fault_rate=lambda busy: max(0.0, 1 - 16 / busy),
                           answers=20_000, seed=2)
    tail = windows[len(windows) // 2:]
    assert max(tail) <= 40 and sum(tail) / len(tail) <= 32


def test_overload_and_clustered_faults_back_off_in_full() -> None:
    lim = Limiter(max_concurrency=64)
    for _ in range(20):
        lim.acquire(1, 0.0)
        lim.succeeded(0.0, {}, EPOCH)
    lim.acquire(1, 0.0)
    lim.failed(0.0, overload=False, fault=True)
    assert not lim.overloaded(0.0) and lim.window.limit == 64  # isolated
    lim.acquire(1, 0.0)
    lim.failed(0.0, overload=True)  # a 503
    assert lim.overloaded(0.5) and lim.window.limit == 32
    assert not lim.overloaded(1.5)
    for _ in range(30):
        lim.acquire(1, 2.0)
        lim.failed(2.0, overload=False, fault=True)
    assert lim.overloaded(3.5) and lim.window.clustered()


def test_shared_per_server_key_and_model() -> None:
    a = shared_limiter("http://h/v1", "k1", "m", max_concurrency=8)
    b = shared_limiter("http://h/v1", "k1", "m", max_concurrency=8)
    c = shared_limiter("http://h/v1", "k2", "m", max_concurrency=8)
    d = shared_limiter("http://h/v1", "k1", "m2", max_concurrency=8)
    assert a is b and a is not c and a is not d


def simulate(lim: Limiter, *, serve_time: Any, parallel: int | None, seconds: float,
             rng: random.Random) -> tuple[int, list[int]]:
    """Drive the limiter against a fake server on a fake clock: `parallel` requests
    at a time (None: unlimited), FIFO queue. Returns answers and windows seen."""
    import heapq

    now, answers, windows = 0.0, 0, []
    queue: list[float] = []  # send times waiting for a server slot
    busy: list[tuple[float, float]] = []  # (done at, sent at)
    while now < seconds:
        while lim.acquire(1, now) == 0:
            queue.append(now)
        while queue and (parallel is None or len(busy) < parallel):
            sent = queue.pop(0)
            heapq.heappush(busy, (now + serve_time(rng), sent))
        done, sent = heapq.heappop(busy)
        now = done
        lim.succeeded(now, {}, EPOCH, latency=now - sent)
        answers += 1
        windows.append(lim.window.limit)
    return answers, windows


def test_serialising_server_settles_at_a_small_window() -> None:
    """Like llama.cpp's server: one request at a time, 0.2 s each. More in flight only
    adds latency, so the window must come down from 64, keeping the throughput."""
    lim = Limiter(max_concurrency=64)
    answers, windows = simulate(lim, serve_time=lambda r: 0.2, parallel=1, seconds=60,
                                rng=random.Random(0))
    assert windows[-1] <= 3
    assert answers >= 0.97 * 60 / 0.2  # throughput kept: the server never idles


def test_parallel_server_keeps_the_full_window() -> None:
    """The simulator: every request in parallel, log-normal latency around 0.3 s."""
    lim = Limiter(max_concurrency=64)
    answers, windows = simulate(lim, serve_time=lambda r: 0.3 * math.exp(r.gauss(0, 0.25)),
                                parallel=None, seconds=30, rng=random.Random(1))
    assert min(windows[200:]) == 64
    assert answers > 0.9 * 64 * 30 / 0.31


def test_batching_server_settles_near_its_parallelism() -> None:
    """A server with 8 slots: the window settles at about twice that, not 64."""
    lim = Limiter(max_concurrency=64)
    answers, windows = simulate(lim, serve_time=lambda r: 0.5, parallel=8, seconds=60,
                                rng=random.Random(2))
    assert 8 <= windows[-1] <= 24
    assert answers >= 0.95 * 8 * 60 / 0.5


def test_mixed_latencies_do_not_shrink_a_parallel_server() -> None:
    """Short and long texts on a parallel server: slow answers are not queueing. A
    drop may be tried once, but it is undone and not tried again."""
    lim = Limiter(max_concurrency=64)

    def serve_time(r: random.Random) -> float:
        return 0.1 if r.random() < 0.2 else 1.0

    answers, windows = simulate(lim, serve_time=serve_time, parallel=None, seconds=60,
                                rng=random.Random(3))
    assert windows[-1] == 64
    assert sum(w < 64 for w in windows) < 0.1 * len(windows)
    assert answers > 0.85 * 64 * 60 / 0.82


def simulate_timeouts(lim: Limiter, *, jobs: int, serve_time: float, timeout: float,
                      parallel: int = 1, jitter: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """A fake server that works through requests in order, `parallel` at a time, and,
    like llama.cpp's server, finishes a request whose client gave up. The client sends
    what the limiter admits, gives up after `timeout` and asks again. Fake clock,
    event by event (ticks every 10 ms for the limiter's time-based state); `jitter`:
    sigma of a log-normal factor on each service time."""
    import heapq

    rng = random.Random(seed)

    now, seq = 0.0, 0
    events: list[tuple[float, int, str, int]] = []  # (time, seq, kind, request id)
    waiting: list[int] = list(range(jobs))  # jobs not in flight
    sent_at: dict[int, float] = {}
    job_of: dict[int, int] = {}
    live: set[int] = set()  # requests the client still waits for
    server_queue: list[int] = []
    busy = 0
    done: set[int] = set()
    timeouts = sent = 0
    timeout_times: list[float] = []

    def push(at: float, kind: str, rid: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, rid))

    def serve() -> None:
        nonlocal busy
        while server_queue and busy < parallel:
            busy += 1
            push(now + serve_time * math.exp(rng.gauss(0, jitter)), "answer",
                 server_queue.pop(0))

    push(0.0, "tick", -1)
    while len(done) < jobs and now < 600:
        while waiting and lim.acquire(1, now) == 0:
            rid = sent
            sent += 1
            job_of[rid], sent_at[rid] = waiting.pop(0), now
            live.add(rid)
            server_queue.append(rid)
            push(now + timeout, "timeout", rid)
        serve()
        now, _, kind, rid = heapq.heappop(events)
        if kind == "tick":
            push(now + 0.01, "tick", -1)
        elif kind == "answer":
            busy -= 1
            if rid in live:
                live.discard(rid)
                lim.succeeded(now, {}, EPOCH, latency=now - sent_at[rid])
                done.add(job_of[rid])
        elif rid in live:  # the client's timeout
            live.discard(rid)
            lim.failed(now, overload=True, timed_out=timeout)
            timeouts += 1
            timeout_times.append(now)
            waiting.insert(0, job_of[rid])
    return {"timeouts": timeouts, "sent": sent, "seconds": now, "window": lim.limit,
            "timeout_times": timeout_times}


def test_queueing_server_does_not_storm_on_a_tight_timeout() -> None:
    """8 at once to a server that answers one at a time (0.5 s) with a 2.5 s timeout:
    the first burst's tail times out, then the guard keeps the queue short enough that
    nothing else does, and the retries do not queue behind the abandoned requests."""
    lim = Limiter(max_concurrency=8, timeout=2.5)
    out = simulate_timeouts(lim, jobs=100, serve_time=0.5, timeout=2.5)
    assert out["timeouts"] <= 8, out
    assert max(out["timeout_times"]) < 5, out  # only the first burst's
    assert out["seconds"] <= 1.05 * (100 + out["timeouts"]) * 0.5  # the server never idled
    assert out["window"] <= 3


def test_without_the_guard_the_same_run_storms() -> None:
    """The same run with the guard off (no timeout known to the limiter): the control
    for the test above, showing the scenario does storm."""
    lim = Limiter(max_concurrency=8)
    out = simulate_timeouts(lim, jobs=100, serve_time=0.5, timeout=2.5)
    assert out["timeouts"] > 20, out


@pytest.mark.parametrize(("serve_time", "jitter"), [(1.0, 0.3), (2.0, 0.3), (2.5, 0.1)])
def test_guard_lets_go_of_a_parallel_server_with_slow_answers(serve_time: float,
                                                              jitter: float) -> None:
    """64 slots, answers slow next to a 3 s timeout (some time out): fewer in flight would
    not make them faster, so the guard must cost nothing (the same run with it off as
    the control). Without its trial it cut the window to one and stalled the run."""
    walls = []
    for timeout in (3.0, None):  # None: the limiter knows no timeout, no guard
        lim = Limiter(max_concurrency=32, timeout=timeout)
        out = simulate_timeouts(lim, jobs=400, serve_time=serve_time, timeout=3.0,
                                parallel=64, jitter=jitter, seed=1)
        walls.append(out["seconds"])
    assert walls[0] <= 1.02 * walls[1], walls


def test_guard_helps_a_server_with_a_few_slots() -> None:
    """4 slots, 0.5 s each, 32 in flight, timeout 2 s: the queue is what times out."""
    out = {}
    for timeout in (2.0, None):
        lim = Limiter(max_concurrency=32, timeout=timeout)
        out[timeout] = simulate_timeouts(lim, jobs=400, serve_time=0.5, timeout=2.0,
                                         parallel=4, jitter=0.2, seed=1)
    assert out[2.0]["timeouts"] <= 0.6 * out[None]["timeouts"], out
    assert out[2.0]["seconds"] <= out[None]["seconds"]


def test_guard_stays_out_of_a_parallel_server() -> None:
    """Answers well inside the timeout: no cap, ghosts of a hung request clear as soon
    as a request sent after it is answered."""
    g = TimeoutGuard(timeout=60.0)
    for i in range(20):
        g.answered(1.0 + i * 0.01, 1.0, 20)
    assert g.cap() is None
    g.timed_out(70.0, 60.0, 1)  # a hung request: the guard engages, but its cap is far off
    assert g.ghosts(70.0) == 1 and g.engaged
    assert (g.cap() or 0) >= 20 * 60 / 2 * 0.9
    g.answered(70.5, 1.0, 1)  # sent at 69.5, after the ghost (10.0)
    assert g.ghosts(70.5) == 0


def test_ghost_drains_at_the_server_rate() -> None:
    g = TimeoutGuard(timeout=2.0)
    for i in range(5):
        g.answered(0.5 * (i + 1), 0.5 * (i + 1), 1)  # one every 0.5 s: 2 answers/s
    g.timed_out(3.0, 2.0, 1)
    g.timed_out(3.0, 2.0, 1)
    assert g.ghosts(3.0) == 2
    assert g.ghosts(3.49) == 2 and g.ghosts(3.51) == 1 and g.ghosts(4.01) == 0
    assert g.cap() == 2  # 2/s * 2.0 s / 2


def test_guard_keeps_the_last_rate_for_the_next_run() -> None:
    """A new run clears the answer times (the idle gap is not the server's rate) but
    does not start at one in flight on a server where the guard once engaged."""
    lim = Limiter(max_concurrency=64, timeout=4.0)
    assert lim.acquire(1, 0.0) == 0
    lim.failed(4.0, overload=False, timed_out=4.0)  # one timeout engages the guard
    assert lim.guard.engaged and lim.guard.ghosts(7.9) == 1  # its ghost, for one timeout
    assert lim.limit == PROBE_WINDOW  # no rate yet: no cap to work out (was 1: serialised)
    for i in range(16):
        assert lim.acquire(1, 8.0 + i * 0.1) == 0
        lim.succeeded(8.0 + i * 0.1 + 0.01, {}, EPOCH, latency=0.01)
    assert lim.guard.engaged and lim.limit == 20  # 10 answers/s * 4 s / 2
    lim.set_concurrency(64, timeout=4.0)  # idle: a new run, an hour later
    assert lim.limit == 20


def test_timeouts_before_any_answer_do_not_serialise_the_retries() -> None:
    """No answer ever: the guard has no rate to work out a cap from, so it sets none (it
    was one in flight: ten retries of a silent server took a timeout and a ghost each)."""
    lim = Limiter(max_concurrency=64, timeout=1.0)
    for _ in range(10):
        assert lim.acquire(1, 0.0) == 0
    for _ in range(10):
        lim.failed(1.0, overload=True, timed_out=1.0)
    assert lim.guard.engaged and lim.guard.cap() is None
    assert all(lim.acquire(1, 1.0) == 0 for _ in range(10))  # the retries go out together


def test_ghosts_filling_the_window_give_a_timed_wait() -> None:
    """Nothing in flight, the window full of ghosts: no release will wake a waiter, so
    the wait is until the first ghost leaves (it was `math.inf`: a run that never ended)."""
    lim = Limiter(max_concurrency=8, timeout=1.0)
    for _ in range(8):
        assert lim.acquire(1, 0.0) == 0
    for _ in range(8):
        lim.failed(1.0, overload=True, timed_out=1.0)
    assert lim.in_flight == 0 and lim.guard.ghosts(1.0) == 8 and lim.limit == 4
    now, waits = 1.0, []
    while (wait := lim.acquire(1, now)) > 0:
        waits.append(wait)
        now += wait
    # Ghosts leave one a second (each its 1 s share); with 3 left there is room.
    assert waits == pytest.approx([1.0] * 5) and now == pytest.approx(6.0)


def test_a_ghost_lasts_at_most_the_time_it_waited() -> None:
    """A rate measured while little came back (one answer a minute) does not hold a
    ghost for a minute: its share is at most the time the request waited in vain."""
    g = TimeoutGuard(timeout=2.0)
    g.answered(0.0, 0.5, 1)
    g.answered(60.0, 0.5, 1)  # one answer a minute
    g.timed_out(70.0, 2.0, 1)
    assert g.ghosts(71.9) == 1 and g.ghosts(72.01) == 0


def test_the_memory_of_recent_answers_is_one_second_however_long_the_run() -> None:
    """It grew by one time per answer for the limiter's life (a million answers, a
    million floats); it only needs the last second's, for a guess of the rate."""
    lim = Limiter(max_concurrency=64)
    now = 0.0
    for _ in range(100_000):  # 1,000 answers a second for 100 s
        assert lim.acquire(10.0, now) == 0.0
        lim.succeeded(now, {}, 0.0)
        now += 0.001
    assert len(lim._recent) <= 1_001
    # the guess still reads the last second: a headerless 429 cuts to 3/4 of it
    assert lim.acquire(10.0, now) == 0.0
    lim.rate_limited(now, {}, 0.0)
    assert lim.requests is not None and lim.requests.rate == pytest.approx(0.75 * 1_001, rel=0.01)


def test_a_slow_answer_alone_then_a_queue_the_guard_holds() -> None:
    """A trace from the real llama.cpp server under CPU load: the first answer came
    alone after 7.3 s (the server was busy with other work), then 8 went out at once.
    The guard engaged on that first answer with a queue of one; its trial then judged a
    cut that cut nothing (answers in ~1 s are not faster than one request's 0.75 s) and
    let go of a server that queues: the next burst of 7 timed out. Now a longer queue
    starts the trial again, and the cut to 2 is judged against a queue of 8."""
    g = TimeoutGuard(timeout=2.5)
    g.answered(7.3, 7.3, 0)  # alone
    t = 8.0
    for busy in (0, 7, 6, 5):  # the burst of 8 comes back one by one
        g.answered(t, 0.6 * (8 - busy), busy)
        t += 0.6
    for busy in (4, 3, 2, 1, 0):  # its tail times out
        g.timed_out(t, 2.5, busy)
    t += 4.0
    for i in range(20):  # under the cap: one or two in flight, answers in ~1 s
        g.answered(t, 0.9 + 0.1 * (i % 4), i % 2)
        t += 0.6
    assert g.engaged and not g._quiet and (g.cap() or 99) <= 2
