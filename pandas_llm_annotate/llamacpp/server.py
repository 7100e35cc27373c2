"""Start and stop llama-cpp-python's OpenAI-compatible server (`python -m
llama_cpp.server`) on 127.0.0.1, and say why it cannot start here."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .model import CHECK, SETUP_HINT, check_failure_path, find_model

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def llama_cpp_installed(python: str | Path | None = None) -> bool:
    """Is `llama_cpp.server` importable (here, or by another interpreter `python`)?"""
    if python is None or Path(python) == Path(sys.executable):
        try:
            return importlib.util.find_spec("llama_cpp") is not None and \
                importlib.util.find_spec("llama_cpp.server") is not None
        except (ImportError, ValueError):
            return False
    probe = subprocess.run([str(python), "-c", "import llama_cpp.server"],
                           capture_output=True, check=False)
    return probe.returncode == 0


def unavailable(model_path: str | Path | None = None,
                python: str | Path | None = None) -> str | None:
    """Why a llama.cpp server cannot start here, or None when it can."""
    if not llama_cpp_installed(python):
        return (f"llama-cpp-python[server] is not installed for {python or sys.executable}. "
                f"{SETUP_HINT}")
    try:
        find_model(model_path)
    except RuntimeError as exc:
        return str(exc)
    failed = check_failure_path()
    if model_path is None and failed.is_file():
        return (f"the llama.cpp server failed `{CHECK}`: "
                f"{failed.read_text().strip()[-400:]} (run it again once fixed)")
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class LlamaCppServer:
    """A running `python -m llama_cpp.server`; also a context manager that stops it.

    `base_url` (ends in `/v1`) and `model` (the alias the server answers to) are what
    `annotate(..., base_url=..., model=...)` needs.
    """

    def __init__(self, proc: subprocess.Popen[bytes], *, host: str, port: int, model: str,
                 model_path: Path, log_path: Path, own_log: bool) -> None:
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.base_url = self.url + "/v1"
        self.model = model
        self.model_path = model_path
        self.log_path = log_path
        self._proc = proc
        self._own_log = own_log
        self._finalizer = weakref.finalize(self, _kill, proc)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"<LlamaCppServer {state}: {self.base_url} model={self.model!r} "
                f"({self.model_path.name}), log {self.log_path}>")

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self.returncode is None

    @property
    def returncode(self) -> int | None:
        """The server's exit code once it has stopped (negative: killed by that signal)."""
        return self._proc.poll()

    def log(self) -> str:
        """The server's output so far (uvicorn's access lines, llama.cpp's timings)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def statuses(self) -> Counter[int]:
        """HTTP statuses of the chat completions answered so far, from the access log."""
        found: Counter[int] = Counter()
        for line in self.log().splitlines():
            if '"POST /v1/chat/completions' in line:
                tail = line.rsplit('"', 1)[-1].split()
                if tail and tail[0].isdigit():
                    found[int(tail[0])] += 1
        return found

    def close(self) -> None:
        """Stop the server (idempotent)."""
        self._finalizer()
        if self._own_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> LlamaCppServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def _ready(url: str) -> bool:
    try:
        with OPENER.open(url + "/v1/models", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def serve_llamacpp(
    model_path: str | Path | None = None,
    *,
    port: int = 0,
    n_ctx: int = 4096,
    alias: str = "smollm2",
    n_threads: int | None = None,
    startup_timeout: float = 120.0,
    log_path: str | Path | None = None,
    python: str | Path | None = None,
    interrupt_requests: bool = False,
    extra_args: Sequence[str] = (),
) -> LlamaCppServer:
    """Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1 and wait until it
    answers `GET /v1/models`; return its handle (a context manager).

    - `model_path`: a .gguf; default `$LLM_ANNOTATE_GGUF`, else SmolLM2-135M in `models_dir()`.
    - `port=0`: a free port. `n_ctx`: context tokens (room for a packed request).
    - `n_threads`: CPU threads for the model (default: half the cores, at least 1).
      llama.cpp's threads spin on a barrier: when the client, or anything else, takes a
      core they wait on, answers get many times slower (measured here on 2 cores: 0.27 s
      with 1 thread, 0.6-22 s with 2 under load), so the default leaves room.
    - `interrupt_requests`: llama-cpp-python's own default (True) cuts a stream off (the
      connection drops mid-answer) as soon as another request waits; off here so
      concurrent streaming requests get whole answers.
    - `python`: the interpreter that has llama_cpp (default: this one).

    Raises RuntimeError, saying what to do, when llama_cpp or the model is missing or the
    server does not come up (with the end of its log).
    """
    reason = unavailable(model_path, python)
    if reason is not None:
        raise RuntimeError(reason)
    model = find_model(model_path)
    threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
    host = "127.0.0.1"
    attempts = 1 if port else 3  # a free port can be taken between our probe and the bind
    last_error = ""
    for _ in range(attempts):
        chosen = port or free_port(host)
        own_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"llamacpp-{chosen}-", suffix=".log")
            os.close(fd)
            log = Path(name)
        else:
            log = Path(log_path)
        argv = [
            str(python or sys.executable), "-m", "llama_cpp.server",
            "--model", str(model), "--model_alias", alias,
            "--host", host, "--port", str(chosen),
            "--n_ctx", str(n_ctx), "--n_threads", str(threads),
            "--n_threads_batch", str(threads),
            "--interrupt_requests", str(interrupt_requests),
            *extra_args,
        ]
        with log.open("ab") as out:
            # A session of its own: a Ctrl-C meant for the caller does not stop the server.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        server = LlamaCppServer(proc, host=host, port=chosen, model=alias, model_path=model,
                                log_path=log, own_log=own_log)
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline and server.running:
            if _ready(server.url):
                return server
            time.sleep(0.1)
        last_error = _tail(log)
        timed_out = server.running
        server.close()
        if timed_out:
            raise RuntimeError(
                f"llama.cpp server did not answer on {server.url} within {startup_timeout} s."
                f" Its log ends:\n{last_error}")
        if "address already in use" not in last_error.lower():
            break
    raise RuntimeError(f"llama.cpp server exited at start. Its log ends:\n{last_error}")
