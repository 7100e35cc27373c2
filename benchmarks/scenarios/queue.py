"""``queue``: a server that answers one request at a time and finishes requests whose
client gave up (the simulator's ``workers=1``, like llama.cpp's server), 8 in flight and
a timeout of a few answers' time, so the queue a client builds decides whether requests
time out and are sent again."""

from __future__ import annotations

from benchmarks.measure import measure, simulator, temp_dir
from benchmarks.results import Scenario, check
from benchmarks.workload import Workload, sample

LATENCY = 0.05  # one answer's service time: 20 answers a second, one at a time
TIMEOUT = 0.25  # five answers' time
CONCURRENCY = 8
ROWS = 300


def run(quick: bool) -> Scenario:
    full = sample()
    work = Workload(texts=full.texts[:ROWS], labels=full.labels)
    dedupe, naive = work.distinct * LATENCY, work.rows * LATENCY
    s = Scenario(
        name="queue",
        title=f"one answer at a time ({LATENCY} s each), {CONCURRENCY} in flight, timeout "
              f"{TIMEOUT} s, {work.rows} rows ({work.distinct} distinct)",
        config={"latency": LATENCY, "workers": 1, "timeout": TIMEOUT,
                "concurrency": CONCURRENCY, "rows": work.rows, "distinct": work.distinct},
        bounds=[(f"bound, deduped ({work.distinct} answers)", dedupe),
                (f"bound, not deduped ({work.rows} answers)", naive)],
    )
    settings = {"max_concurrency": CONCURRENCY, "timeout": TIMEOUT}
    with simulator(latency=LATENCY, jitter=0.1, workers=1) as sim, \
            temp_dir("bench-queue-") as tmp:
        texts = work.write_texts(tmp / "texts.json")
        s.rows = [
            measure(sim, f"openai+semaphore({CONCURRENCY}), timeout {TIMEOUT}", "openai_sem",
                    work, texts_path=texts, bound_s=naive, concurrency=CONCURRENCY,
                    timeout=TIMEOUT),
            measure(sim, "pla, timeout guard off (control)", "pla", work, texts_path=texts,
                    bound_s=dedupe, cache_dir=str(tmp / "c1"), settings=settings,
                    no_guard=True),
            measure(sim, "pla", "pla", work, texts_path=texts, bound_s=dedupe,
                    cache_dir=str(tmp / "c2"), settings=settings),
        ]
    ours = s.rows[-1]
    s.notes = [
        f"bound = answers × {LATENCY} s: the server does one at a time, so nothing is faster;"
        " each row's ratio is to its own bound (pla dedupes, openai+semaphore does not).",
        "requests = what reached the server (its own count, abandoned ones included); every "
        "request past the rows' own is a re-send after a timeout, and each costs a full "
        "answer's time on the server, since it finishes requests whose client left.",
        "control = this package with the limiter's timeout guard switched off in its child "
        "process (the rest of the limiter as it is).",
    ]
    s.checks = [
        check("pla rows lost", "0", ours.rows_lost, lambda v: v == 0),
        check("pla re-sent requests", f"≤ {CONCURRENCY} (one burst)",
              None if ours.requests is None else ours.requests - work.distinct,
              lambda v: v <= CONCURRENCY),
    ]
    return s
