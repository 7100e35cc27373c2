"""Run the simulator: on a background thread, or in a child process.

``serve()`` never touches the caller's event loop, so it works from plain
scripts and from inside a running loop (Jupyter) alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess as sp
import sys
import tempfile
import threading
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

from .config import API_KEY_ENV, SimulatorConfig, check_host
from .server import SIMULATOR, Simulator, base_url, start_site

__all__ = ["SimulatorHandle", "serve"]

_LISTENING = re.compile(r"listening on (http://\S+)/v1\s*$")
# Never route loopback control traffic through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SimulatorHandle:
    """A running simulator; also a context manager that closes it on exit."""

    def __init__(self, host: str, port: int, config: SimulatorConfig) -> None:
        self.host = host
        self.port = port
        self.config = config
        self.url = base_url(host, port)  # root, for /stats
        self.base_url = self.url + "/v1"  # what an OpenAI client wants

    def stats(self) -> dict[str, Any]:
        """Counters as served by ``GET /stats``."""
        with _OPENER.open(self.url + "/stats", timeout=10) as resp:
            data: dict[str, Any] = json.load(resp)
        return data

    def reset_stats(self) -> None:
        """Zero the counters (``POST /stats/reset``)."""
        req = urllib.request.Request(self.url + "/stats/reset", data=b"", method="POST")
        with _OPENER.open(req, timeout=10):
            pass

    def close(self) -> None:
        """Stop the server (idempotent)."""

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url}>"


class _ThreadHandle(SimulatorHandle):
    """Server on a daemon thread running its own event loop."""

    def __init__(self, config: SimulatorConfig, timeout: float) -> None:
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._sim: Simulator | None = None
        self._final: dict[str, Any] | None = None
        self._addr: tuple[str, int] = ("", 0)
        self._thread = threading.Thread(
            target=self._run, args=(config,), name="llm-simulator", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("simulator did not start in time")
        if self._error is not None:
            raise self._error
        super().__init__(*self._addr, config)

    def _run(self, config: SimulatorConfig) -> None:
        try:
            asyncio.run(self._main(config))
        except BaseException as exc:  # surfaced to the starting thread
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()

    async def _main(self, config: SimulatorConfig) -> None:
        runner, host, port = await start_site(config)
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._sim = runner.app[SIMULATOR]
        self._addr = (host, port)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            self._final = self._sim.stats.snapshot()
            await runner.cleanup()

    def _call(self, fn: Any) -> Any:
        """Run ``fn()`` on the server loop and wait for its result."""
        assert self._loop is not None

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    def stats(self) -> dict[str, Any]:
        if self._final is not None:  # closed: the last counters
            return self._final
        assert self._sim is not None
        stats = self._sim.stats
        result: dict[str, Any] = self._call(stats.snapshot)
        return result

    def reset_stats(self) -> None:
        assert self._sim is not None
        if self._final is None:
            self._call(self._sim.stats.reset)

    def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is None or stop is None or not self._thread.is_alive():
            return
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # loop already closed
            return
        self._thread.join(timeout=10)


def _package_root() -> str:
    """Directory holding the ``pandas_llm_annotate`` package."""
    return str(Path(__file__).resolve().parents[2])


def config_to_argv(config: SimulatorConfig) -> list[str]:
    """CLI flags reproducing ``config`` (see ``__main__``), but its key: that goes in the
    child's environment (``API_KEY_ENV``)."""
    argv = [
        "--host", config.host,
        "--port", str(config.port),
        "--latency", repr(config.latency),
        "--jitter", repr(config.jitter),
        "--ttft", repr(config.ttft),
        "--rpm", repr(config.rpm or 0),
        "--tpm", repr(config.tpm or 0),
        "--burst", repr(config.burst),
        "--capacity", str(config.capacity),
        "--workers", str(config.workers),
        "--faults", repr(config.faults),
        "--bad-fields", repr(config.bad_fields),
        "--fault-kinds", ",".join(config.fault_kinds),
        "--hang", repr(config.hang),
        "--seed", str(config.seed),
        "--batch-delay", repr(config.batch_delay),
        "--batch-window", repr(config.batch_window),
        "--batch-faults", repr(config.batch_faults),
    ]  # fmt: skip
    if not config.rate_headers:
        argv.append("--no-rate-headers")
    if config.models is not None:
        argv.append("--models=" + ",".join(config.models))
    return argv


def _kill(proc: sp.Popen[str]) -> None:
    """Terminate, then kill, a child server."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except sp.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


class _ProcessHandle(SimulatorHandle):
    """Server in a child ``python -m pandas_llm_annotate.simulator``."""

    def __init__(self, config: SimulatorConfig, timeout: float) -> None:
        env = dict(os.environ)
        paths = [_package_root(), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env.pop(API_KEY_ENV, None)
        if config.api_key:  # not in argv: `ps` shows the command line to every user
            env[API_KEY_ENV] = config.api_key
        argv = [sys.executable, "-m", "pandas_llm_annotate.simulator"]
        # Closed in close(); a file, not a pipe, so a chatty child never blocks.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = sp.Popen(
            argv + config_to_argv(config),
            stdout=sp.PIPE,
            stderr=self._stderr,
            stdin=sp.DEVNULL,
            env=env,
            text=True,
        )
        self._finalizer = weakref.finalize(self, _kill, self._proc)
        match = _LISTENING.match(self._first_line(timeout))
        if match is None:
            self.close()
            raise RuntimeError(f"simulator child failed to start: {self._errors()}")
        host, _, port = match.group(1)[len("http://") :].rpartition(":")
        super().__init__(host.strip("[]"), int(port), config)

    def _first_line(self, timeout: float) -> str:
        lines: list[str] = []
        out = self._proc.stdout
        assert out is not None
        reader = threading.Thread(target=lambda: lines.append(out.readline()))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        return lines[0] if lines else ""

    def _errors(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    @property
    def pid(self) -> int:
        """Process id of the child server."""
        return self._proc.pid

    def close(self) -> None:
        self._finalizer()
        self._stderr.close()


def serve(
    config: SimulatorConfig | None = None,
    *,
    subprocess: bool = False,
    startup_timeout: float = 20.0,
    **config_kwargs: Any,
) -> SimulatorHandle:
    """Start a simulator on a free loopback port and return its handle.

    Use as ``with serve(latency=0.1, rpm=600) as sim: ...`` (closes on exit)
    or keep the handle and call ``close()``.  ``subprocess=True`` runs the
    server in a child process so it does not share the caller's GIL.
    """
    if config is None:
        config = SimulatorConfig(**config_kwargs)
    elif config_kwargs:
        raise TypeError("pass either config or keyword settings, not both")
    check_host(config.host)
    if subprocess:
        return _ProcessHandle(config, startup_timeout)
    return _ThreadHandle(config, startup_timeout)
