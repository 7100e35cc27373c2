"""A llama.cpp server with a small real model: `fetch` the model, `check` the server
(start, ask once, stop), `serve` it in the foreground.

    python -m pandas_llm_annotate.llamacpp fetch [--dest FOLDER]
    python -m pandas_llm_annotate.llamacpp check [--model FILE.gguf]
    python -m pandas_llm_annotate.llamacpp serve [--model FILE.gguf] [--port 8080]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import urllib.request
from collections.abc import Sequence

from .model import check_failure_path, fetch_model
from .server import OPENER, serve_llamacpp


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
            with OPENER.open(request, timeout=60) as resp:
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
    fetch = sub.add_parser("fetch", help="put the default model in --dest, else "
                           "$LLM_ANNOTATE_MODELS_DIR, else the user cache folder (idempotent)")
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
