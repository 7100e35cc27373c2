#!/usr/bin/env python3
"""One entry point for people and CI; needs only Python >= 3.10.

    python3 dev.py demo    # label a shipped sample against the embedded simulator
    python3 dev.py test    # ruff + mypy + the test suite
    python3 dev.py bench   # benchmarks (markdown table + PNG chart)
    python3 dev.py real-llm  # llama.cpp server + SmolLM2-135M for the real-LLM tests

Each command creates ./.venv on first use and installs what it needs into it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
EXTRAS = {"demo": "", "test": "[dev,semantic]", "bench": "[dev,bench,semantic]",
          "real-llm": "[real-llm]"}


def sh(*cmd: str | Path) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    marker = VENV / f".installed{extras or '[core]'}"
    stamp = str((ROOT / "pyproject.toml").stat().st_mtime)
    if marker.exists() and marker.read_text() == stamp:
        return
    if extras == "[real-llm]":
        # llama-cpp-python builds llama.cpp from source: ~10 min on 2 cores the first time;
        # pip caches the built wheel, so later installs on this machine take seconds.
        os.environ.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        print("real-llm: installing llama-cpp-python[server] (the first time it builds "
              "llama.cpp from source, about 10 minutes on 2 cores)", flush=True)
    sh(PY, "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(PY, "-m", "pip", "install", "-q", "-c", "constraints.txt", "-e", f".{extras}")
    marker.write_text(stamp)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    ensure_venv(EXTRAS[what])
    env_py = str(PY)
    try:
        if what == "demo":
            sh(env_py, "-m", "pandas_llm_annotate.demo", *rest)
        elif what == "real-llm":  # fetch the model (idempotent), then start, ask once, stop
            sh(env_py, "-m", "pandas_llm_annotate.llamacpp", "fetch")
            sh(env_py, "-m", "pandas_llm_annotate.llamacpp", "check")
        elif what == "test":
            sh(BIN / "ruff", "check", ".")
            sh(BIN / "mypy")
            sh(env_py, "-m", "pytest", *(rest or ["-q"]))
        else:
            sh(env_py, "benchmarks/run.py", *rest)
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
