"""Estimate a run before it: the same plan, pieces, cache lookup and request bodies a
run would build, and no request. See `report/estimate.py` for what is estimated."""

from __future__ import annotations

import math

from ..protocol.structured import Negotiator
from ..ratelimit.registry import known_limiter
from ..report.estimate import Estimate
from ..report.pricing import price_of
from .cache import Cache
from .requests import RequestBuilder
from .run import Run

SAMPLE = 2000  # requests whose bodies are built; more are extrapolated from them


def estimate_run(run: Run) -> Estimate:
    s = run.settings
    cached: dict[str, str] = {}
    usage = None
    if s.cache is not False:
        cache = Cache.open(None if s.cache is True else s.cache)
        try:
            cached = cache.get_many(list(run.pieces.text))
            usage = cache.usage(run.namespace)
        finally:
            cache.close()
    todo = [k for k in run.pieces.text if k not in cached]
    shared = known_limiter(s.base_urls[0], s.api_key, str(s.model))
    buckets = [b.capacity for b in (shared.tokens if shared else None,) if b is not None]
    if s.tpm:
        buckets.append(s.tpm / 60)
    builder = RequestBuilder(run.task, run.pieces.text, model=str(s.model),
                             temperature=s.temperature, packed=run.packed,
                             structured=s.structured,
                             negotiator=Negotiator(s.base_urls[0], str(s.model)))
    k = builder.rows_per_request(s.rows_per_request, todo, min(buckets) if buckets else None)
    jobs = [tuple(todo[i : i + k]) for i in range(0, len(todo), k)]
    sample = [builder.prepare(job) for job in jobs[:SAMPLE]]
    scale_up = len(jobs) / len(sample) if sample else 0.0
    prompt = sum(r.prompt_estimate for r in sample) * scale_up
    completion_max = sum(r.max_tokens for r in sample) * scale_up
    mean_latency = None
    if usage is not None:  # (requests, estimated prompt, prompt, completion, latency, timed)
        requests_seen, estimated, actual, completion_seen, latency, timed = usage
        prompt *= actual / estimated if estimated else 1.0
        completion = min(completion_max, completion_seen / requests_seen * len(jobs))
        mean_latency = latency / timed if timed else None  # batch answers have none
    else:
        completion = min(completion_max, run.task.expected_answer_tokens() * len(todo))
    wall, basis = _wall(run, len(jobs), prompt + completion_max, shared, mean_latency)
    if s.batch and jobs:
        wall, basis = None, "Batch API: within its 24 h completion window"
    return Estimate(
        model=str(s.model), rows=run.plan.rows, missing=run.plan.missing,
        distinct=len(run.plan.texts), pieces=len(run.pieces), cached=len(cached),
        to_ask=len(todo), rows_per_request=k, requests=len(jobs),
        prompt_tokens=round(prompt), completion_tokens=round(completion),
        completion_tokens_max=round(completion_max),
        calibrated_from=usage[0] if usage else 0,
        price=s.price or price_of(s.model), wall_s=wall, wall_basis=basis, batch=s.batch,
    )


def _wall(run: Run, requests: int, charged_tokens: float, shared: object,
          latency: float | None) -> tuple[float | None, str]:
    """The slowest of the bounds known: the request and token rates (the run's rpm/tpm,
    or learned from this server's headers in this process), and the mean latency of
    earlier answers over `max_concurrency` requests in flight."""
    s = run.settings
    bounds: list[tuple[float, str]] = []
    learned_rpm = getattr(getattr(shared, "requests", None), "rate", None)
    learned_tpm = getattr(getattr(shared, "tokens", None), "rate", None)
    rpms = [r for r in (s.rpm, learned_rpm and learned_rpm * 60) if r]
    tpms = [t for t in (s.tpm, learned_tpm and learned_tpm * 60) if t]
    if rpms:
        bounds.append((requests / min(rpms) * 60, f"{min(rpms):,.0f} requests/min"))
    if tpms:
        bounds.append((charged_tokens / min(tpms) * 60, f"{min(tpms):,.0f} tokens/min"))
    if latency:
        waves = math.ceil(requests / s.max_concurrency)
        bounds.append((waves * latency, f"{latency:.2f}s per answer, "
                                        f"{s.max_concurrency} in flight"))
    if not requests:
        return 0.0, "nothing to ask"
    if not bounds:
        return None, "no rate limit or latency known yet for this server"
    wall, basis = max(bounds)
    return round(wall, 2), basis
