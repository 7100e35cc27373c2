"""The cluster's rate budget for one server, key and model: a distributed Actor that
holds the package's own `Limiter` (buckets learned from headers, the 429 pause, the
AIMD window, the timeout guard) and hands out leases of request slots.

A worker process does not ask it per request: its `LeaseStock` (`lease.py`) asks for
many slots at a time and reports, in the same call, how the requests it sent ended
(their rate-limit headers, 429s, timeouts, latencies), which the coordinator replays on
its limiter. So every worker learns what any worker learned, one round trip later.
A slot counts as a request in flight until its outcome comes back; the slots of a
holder silent for HOLDER_TTL_S (a killed worker) are given back.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..ratelimit.limiter import Limiter
from ..ratelimit.run_limits import RunLimits

HOLDER_TTL_S = 3.0  # a holder silent this long is gone (a killed worker): its slots return

# How a request ended, as a lease call reports it:
#   ("ok", headers, prompt_estimate, prompt_tokens, latency)
#   ("failed", overload, fault, timed_out)
#   ("429", headers, max_wait)
#   ("unused",): a slot leased and never used
Outcome = tuple[Any, ...]


def rate_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers the limiter reads (quotas, waits): all a lease call carries."""
    return {k: v[:200] for k, v in headers.items()
            if "ratelimit" in k.lower() or k.lower().startswith("retry-after")}


@dataclass
class Holder:
    """A worker process's stock, as the coordinator sees it."""

    out: int = 0  # slots leased and not yet reported back
    heard: float = 0.0  # its last lease call
    waiting: bool = False  # its last call asked for more slots than it got


class Coordinator:
    """Lives on one worker (`client.submit(Coordinator, ..., actor=True)`); its methods
    run one at a time on that worker's actor thread."""

    def __init__(self, max_concurrency: int, timeout: float | None, rpm: float | None = None,
                 tpm: float | None = None) -> None:
        self.limiter = Limiter(max_concurrency=max_concurrency, timeout=timeout)
        self.limits = self._open(max_concurrency, timeout, rpm, tpm)
        self.holders: dict[str, Holder] = {}

    def _open(self, max_concurrency: int, timeout: float | None, rpm: float | None,
              tpm: float | None) -> RunLimits:
        """What the server taught (`limiter`), under the computation's own cap and
        rpm/tpm: those hold for the whole cluster, not per partition."""
        limits = RunLimits(self.limiter, max_concurrency=max_concurrency, rpm=rpm, tpm=tpm,
                           timeout=timeout, now=time.monotonic())
        return limits.__enter__()

    def lease(self, holder: str, want: int, cost: float,
              outcomes: Sequence[Outcome]) -> dict[str, Any]:
        """Replay `outcomes`, then grant up to `want` slots of `cost` tokens each. The
        answer also carries what the holder mirrors: the pause left, the limit, the
        token scale, whether the server looks overloaded, the token bucket's depth."""
        now, epoch = time.monotonic(), time.time()
        self._expire(now, holder)
        me = self.holders.setdefault(holder, Holder())
        me.heard = now
        for outcome in outcomes:
            self._replay(outcome, now, epoch)
            me.out -= 1
        # A fair share of the window each: the holders with slots out or waiting for
        # some split it, so none can hoard it.
        active = [h for h in self.holders.values()
                  if h.out > 0 or h.waiting or (h is me and want)]
        share = math.ceil(self.limits.limit / max(1, len(active)))
        asked, want = want, min(want, max(0, share - me.out))
        granted, wait = 0, math.inf if want == 0 else 0.0
        while granted < want:
            wait = self.limits.acquire(cost, now)
            if wait:
                break
            granted += 1
        me.out = max(0, me.out + granted)
        me.waiting = granted < asked
        lim = self.limiter
        return {
            "granted": granted,
            "wait": None if math.isinf(wait) else wait,
            "pause": max(0.0, lim.paused_until - now),
            "limit": self.limits.limit,
            "token_scale": lim.token_scale,
            "overloaded": lim.overloaded(now),
            "token_depth": self.limits.token_capacity,
        }

    def configure(self, max_concurrency: int, timeout: float | None, rpm: float | None,
                  tpm: float | None) -> None:
        """A new computation's cap on requests in flight, timeout, rpm and tpm (for the
        whole cluster); what the server taught stays."""
        self.limits.__exit__(None, None, None)
        self.limits = self._open(max_concurrency, timeout, rpm, tpm)

    def _replay(self, outcome: Outcome, now: float, epoch: float) -> None:
        kind, *rest = outcome
        lim = self.limits
        if kind == "ok":
            headers, estimate, prompt_tokens, latency = rest
            lim.succeeded(now, headers, epoch, prompt_estimate=estimate,
                          prompt_tokens=prompt_tokens, latency=latency)
        elif kind == "429":
            headers, max_wait = rest
            lim.rate_limited(now, headers, epoch, max_wait=max_wait)
        elif kind == "failed":
            overload, fault, timed_out = rest
            lim.failed(now, overload=overload, fault=fault, timed_out=timed_out)
        else:  # "unused"
            lim.failed(now, overload=False)

    def _expire(self, now: float, asking: str) -> None:
        for name, holder in list(self.holders.items()):
            if name != asking and now - holder.heard > HOLDER_TTL_S:
                del self.holders[name]
                for _ in range(holder.out):
                    self.limits.failed(now, overload=False)


def coordinators(base_urls: Sequence[str], api_key: str | None, model: str, *,
                 max_concurrency: int, timeout: float, rpm: float | None = None,
                 tpm: float | None = None) -> dict[str, tuple[str, str]] | None:
    """On the client: the coordinator of each server (created when the cluster has
    none yet for that server, key and model; published as a dataset of the scheduler,
    so every computation on the cluster shares it), as (worker address, actor key)
    pairs a task can reach it by. None without a distributed Client (one process: its runs already
    share the process's limiter)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        client = default_client()
    except ValueError:
        return None
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    found: dict[str, tuple[str, str]] = {}
    for url in base_urls:
        key = hashlib.sha256(f"{url}\0{api_key or ''}\0{model}".encode()).hexdigest()[:16]
        name = f"pla-coordinator-{key}"
        future = client.get_dataset(name) if name in client.list_datasets() else None
        if future is None or future.status != "finished":
            if future is not None:
                client.unpublish_dataset(name)
            future = client.submit(Coordinator, max_concurrency * workers, timeout, rpm, tpm,
                                   actor=True, pure=False)
            client.publish_dataset(future, name=name)  # kept alive for the next computation
        actor = future.result()
        actor.configure(max_concurrency * workers, timeout, rpm, tpm).result()
        found[url] = (actor._address, actor.key)
    return found
