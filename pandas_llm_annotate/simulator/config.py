"""Configuration of the simulated OpenAI-compatible server."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["API_KEY_ENV", "FAULT_KINDS", "SimulatorConfig", "check_host"]

#: The key the CLI requires, read from the environment (argv shows in `ps`).
API_KEY_ENV = "LLM_ANNOTATE_SIMULATOR_API_KEY"

#: Fault kinds, in the order the RNG picks from.
FAULT_KINDS: tuple[str, ...] = ("error", "reset", "hang", "malformed")


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """How the simulator behaves.  All times are in seconds.

    ``rpm``/``tpm`` of ``None`` or 0 mean unlimited; ``capacity`` 0 means no
    concurrency cap; ``faults`` is the probability of a fault per request.
    ``bad_fields`` is the share of fields answered wrong in field (``extract``)
    requests, seeded per text and field: half left out, half of a wrong type.
    ``workers`` > 0 answers that many requests at a time and queues the rest in
    order, like llama.cpp's server: slower, not refused, as more wait, and a request
    whose client gave up still takes its turn (streams then send every token at the
    end of that turn).

    Batches (``/v1/files``, ``/v1/batches``): a batch validates for a tenth of
    ``batch_delay``, answers its requests evenly over the next eight tenths, finalizes
    for the last tenth; it expires when ``batch_window`` (OpenAI: 24 h) passes first.
    ``batch_faults`` is the probability that a request of a batch fails (HTTP 500 in
    the error file), drawn from the seeded RNG.
    """

    host: str = "127.0.0.1"
    port: int = 0
    latency: float = 0.0  # median of the log-normal latency
    jitter: float = 0.25  # sigma of the log-normal
    ttft: float = 0.3  # streaming: first token after this fraction of latency
    rpm: float | None = None
    tpm: float | None = None
    burst: float = 1.0
    capacity: int = 0
    workers: int = 0
    faults: float = 0.0
    bad_fields: float = 0.0
    fault_kinds: Sequence[str] = FAULT_KINDS
    hang: float = 30.0
    seed: int = 0
    rate_headers: bool = True
    api_key: str | None = field(default=None, repr=False)
    models: Sequence[str] | None = None
    batch_delay: float = 1.0
    batch_window: float = 86400.0
    batch_faults: float = 0.0

    def __post_init__(self) -> None:
        # Normalise sequences to tuples so the config stays hashable-ish.
        object.__setattr__(self, "fault_kinds", tuple(self.fault_kinds))
        if self.models is not None:
            models = self.models
            if isinstance(models, str):
                models = [m for m in models.split(",") if m]
            object.__setattr__(self, "models", tuple(models))
        for name in ("latency", "jitter", "ttft", "hang", "batch_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.batch_window <= 0:
            raise ValueError("batch_window must be > 0")
        if self.burst <= 0:
            raise ValueError("burst must be > 0")
        if self.capacity < 0:
            raise ValueError("capacity must be >= 0")
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        for name in ("faults", "batch_faults"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]")
        if not 0.0 <= self.bad_fields <= 1.0:
            raise ValueError("bad_fields must be a share in [0, 1]")
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown or not self.fault_kinds:
            raise ValueError(f"fault_kinds must be a non-empty subset of {FAULT_KINDS}")


def check_host(host: str, allow_remote: bool = False) -> None:
    """Refuse to bind anything but loopback unless ``allow_remote``."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to bind non-loopback host {host!r} (pass --allow-remote)")
