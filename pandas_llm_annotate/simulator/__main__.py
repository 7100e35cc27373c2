"""CLI: ``python -m pandas_llm_annotate.simulator [--port 8000] ...``.

Prints ``listening on http://HOST:PORT/v1`` once bound, then serves until
SIGINT/SIGTERM.  Binds loopback only unless ``--allow-remote``.  Requires the API
key in ``$LLM_ANNOTATE_SIMULATOR_API_KEY`` when that is set (never on the command
line, where ``ps`` shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from .config import API_KEY_ENV, FAULT_KINDS, SimulatorConfig, check_host
from .server import base_url, start_site


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults model a modest real account)."""
    p = argparse.ArgumentParser(
        prog="python -m pandas_llm_annotate.simulator",
        description="Embedded OpenAI-compatible chat completions simulator.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--latency", type=float, default=0.3, help="median seconds")
    p.add_argument("--jitter", type=float, default=0.25, help="log-normal sigma")
    p.add_argument("--ttft", type=float, default=0.3, help="stream: first token fraction")
    p.add_argument("--rpm", type=float, default=600, help="requests/min, 0 = unlimited")
    p.add_argument("--tpm", type=float, default=100000, help="tokens/min, 0 = unlimited")
    p.add_argument("--burst", type=float, default=1.0, help="bucket size in seconds")
    p.add_argument("--capacity", type=int, default=0, help="max in flight, 0 = no cap")
    p.add_argument("--workers", type=int, default=0,
                   help="answer N at a time, queue the rest (like llama.cpp), 0 = all at once")
    p.add_argument("--faults", type=float, default=0.0, help="fault probability")
    p.add_argument("--bad-fields", type=float, default=0.0,
                   help="share of extract fields answered wrong (missing or wrong type)")
    p.add_argument("--fault-kinds", default=",".join(FAULT_KINDS), help="comma-separated subset")
    p.add_argument("--hang", type=float, default=30.0, help="hang fault seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-rate-headers", action="store_true")
    p.add_argument("--models", default=None, help="comma-separated allowed models")
    p.add_argument("--batch-delay", type=float, default=1.0,
                   help="seconds a batch takes from creation to completed")
    p.add_argument("--batch-window", type=float, default=86400.0,
                   help="seconds before an unfinished batch expires")
    p.add_argument("--batch-faults", type=float, default=0.0,
                   help="probability that a request of a batch fails")
    p.add_argument("--allow-remote", action="store_true", help="allow non-loopback")
    return p


def config_from_args(ns: argparse.Namespace) -> SimulatorConfig:
    """Turn parsed flags into a config (raises ValueError on bad values)."""
    check_host(ns.host, ns.allow_remote)
    models = None if ns.models is None else [m for m in ns.models.split(",") if m]
    return SimulatorConfig(
        host=ns.host,
        port=ns.port,
        latency=ns.latency,
        jitter=ns.jitter,
        ttft=ns.ttft,
        rpm=ns.rpm or None,
        tpm=ns.tpm or None,
        burst=ns.burst,
        capacity=ns.capacity,
        workers=ns.workers,
        faults=ns.faults,
        bad_fields=ns.bad_fields,
        fault_kinds=[k for k in ns.fault_kinds.split(",") if k],
        hang=ns.hang,
        seed=ns.seed,
        rate_headers=not ns.no_rate_headers,
        api_key=os.environ.get(API_KEY_ENV) or None,
        models=models,
        batch_delay=ns.batch_delay,
        batch_window=ns.batch_window,
        batch_faults=ns.batch_faults,
    )


async def _serve(config: SimulatorConfig) -> None:
    runner, host, port = await start_site(config)
    print(f"listening on {base_url(host, port)}/v1", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        config = config_from_args(ns)
    except ValueError as exc:
        parser.error(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
