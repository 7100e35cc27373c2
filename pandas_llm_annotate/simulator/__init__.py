"""An embedded OpenAI-compatible chat completions simulator.

A real aiohttp server on loopback with seeded latency, token-bucket rate
limits (with OpenAI's ``x-ratelimit-*`` headers), a concurrency cap,
injected faults and deterministic answers, for tests and benchmarks::

    with serve(latency=0.05, rpm=600) as sim:
        client = AsyncOpenAI(base_url=sim.base_url, api_key="x")
        ...
        assert max(sim.stats()["texts"].values()) == 1

Modules: ``config`` (settings), ``answers`` (deterministic answers),
``buckets`` and ``limits`` (rate limits and their headers), ``faults`` (the seeded
fault and latency rolls), ``replies`` (JSON and SSE answers, faults struck in them),
``wire`` (request validation, error bodies), ``tokens`` (its token count: not the
client's estimate), ``batches`` (the Files and Batches endpoints: upload, the batch
life cycle, output and error files), ``stats``,
``server`` (the checks' order, the aiohttp app), ``runner`` (``serve``) and
``__main__`` (CLI).
"""

from .answers import answer_messages, answer_text
from .config import FAULT_KINDS, SimulatorConfig
from .runner import SimulatorHandle, serve
from .server import create_app
from .tokens import count_tokens

__all__ = [
    "FAULT_KINDS",
    "SimulatorConfig",
    "SimulatorHandle",
    "answer_messages",
    "answer_text",
    "count_tokens",
    "create_app",
    "serve",
]
