"""The process-wide limiters: one per server, key and model (the key only hashed)."""

from __future__ import annotations

import hashlib
import threading
import time

from .limiter import Limiter
from .run_limits import RunLimits

_shared: dict[tuple[str, str, str], Limiter] = {}
_shared_lock = threading.Lock()


def _key(base_url: str, api_key: str | None, model: str) -> tuple[str, str, str]:
    return (base_url, hashlib.sha256((api_key or "").encode()).hexdigest()[:16], model)


def install(base_url: str, api_key: str | None, model: str, limiter: Limiter) -> None:
    """Make `limiter` the one every run in this process uses for this server, key and
    model (a Dask worker's leases from the cluster's coordinator: `dask/lease.py`)."""
    with _shared_lock:
        _shared[_key(base_url, api_key, model)] = limiter


def uninstall(base_url: str, api_key: str | None, model: str, limiter: Limiter) -> None:
    """Forget `limiter` if it is still the installed one."""
    key = _key(base_url, api_key, model)
    with _shared_lock:
        if _shared.get(key) is limiter:
            del _shared[key]


def known_limiter(base_url: str, api_key: str | None, model: str) -> Limiter | None:
    """The shared limiter for this server, key and model if a run made one, else None."""
    with _shared_lock:
        return _shared.get(_key(base_url, api_key, model))


def shared_limiter(base_url: str, api_key: str | None, model: str, *, max_concurrency: int,
                   timeout: float | None = None) -> Limiter:
    """The limiter every run against this server, key and model shares."""
    key = _key(base_url, api_key, model)
    with _shared_lock:
        limiter = _shared.get(key)
        if limiter is None:
            limiter = _shared[key] = Limiter(max_concurrency=max_concurrency, timeout=timeout)
        return limiter


def run_limits(base_url: str, api_key: str | None, model: str, *, max_concurrency: int,
               rpm: float | None, tpm: float | None, timeout: float | None,
               share: RunLimits | None = None) -> RunLimits:
    """A run's limits (its own rpm/tpm/max_concurrency) over the shared limiter.
    `share`: the limits of another server of the same run, whose rpm/tpm buckets these
    use too (a run's rpm and tpm are the run's, however many servers it spreads over;
    `max_concurrency` holds per server)."""
    shared = shared_limiter(base_url, api_key, model, max_concurrency=max_concurrency,
                            timeout=timeout)
    limits = RunLimits(shared, max_concurrency=max_concurrency, rpm=rpm, tpm=tpm,
                       timeout=timeout, now=time.monotonic())
    if share is not None:
        limits.requests, limits.tokens = share.requests, share.tokens
    return limits
