"""Fault injection: the seeded roll of a fault and a latency for each request, and
the faults' own answers (a 500, a dropped connection). Where each fault strikes in
an answer (a hang before it, a reset or garbage mid-stream) is in ``replies.py``."""

from __future__ import annotations

import math
import random

from aiohttp import web

from .config import SimulatorConfig
from .stats import Stats
from .wire import error


class Dice:
    """The seeded draws of one server: same seed, same faults and latencies."""

    def __init__(self, config: SimulatorConfig, stats: Stats) -> None:
        self.config = config
        self.stats = stats
        self.rng = random.Random(config.seed)
        self._mu = math.log(config.latency) if config.latency > 0 else None

    def draw(self) -> tuple[str | None, float]:
        """Seeded fault kind (or None) and latency for one request."""
        cfg, rng = self.config, self.rng
        fault = None
        if cfg.faults and rng.random() < cfg.faults:
            fault = rng.choice(cfg.fault_kinds)
            self.stats.faults[fault] += 1
        delay = rng.lognormvariate(self._mu, cfg.jitter) if self._mu is not None else 0.0
        return fault, delay


def server_error(headers: dict[str, str]) -> web.Response:
    return error(
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
        headers,
    )


def reset(request: web.Request, resp: web.StreamResponse | None = None) -> web.StreamResponse:
    """Drop the connection; aiohttp then fails quietly writing the response."""
    if request.transport is not None:
        request.transport.close()
    return resp if resp is not None else web.Response()
