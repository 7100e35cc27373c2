#!/usr/bin/env python3
"""One entry point for people and CI; needs only Python >= 3.10.

    python3 dev.py demo    # label a shipped sample against the embedded simulator
    python3 dev.py test    # ruff + mypy + import layers + the test suite
    python3 dev.py bench   # benchmarks (markdown table + PNG chart)
    python3 dev.py real-llm  # llama.cpp server + SmolLM2-135M for the real-LLM tests

Each command creates ./.venv on first use and installs what it needs into it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
EXTRAS = {"demo": "", "test": "[dev,semantic,browser,dask]", "bench": "[dev,bench,semantic,dask]",
          "real-llm": "[real-llm]"}


def sh(*cmd: str | Path) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def ensure_venv(extras: str) -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    marker = VENV / f".installed{extras or '[core]'}"
    stamp = str((ROOT / "pyproject.toml").stat().st_mtime)
    wheel_dir = llama_wheel() if extras == "[real-llm]" else None
    links = [] if wheel_dir is None else ["--find-links", str(wheel_dir)]
    stamp += "" if wheel_dir is None else " " + str(wheel_dir)
    if marker.exists() and marker.read_text() == stamp:
        return
    sh(PY, "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(PY, "-m", "pip", "install", "-q", "-c", "constraints.txt", *links, "-e", f".{extras}")
    if wheel_dir is not None:  # a build with other flags may be installed: put this one in
        wheels = sorted(wheel_dir.glob("llama_cpp_python-*.whl"))
        sh(PY, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheels[-1])
    marker.write_text(stamp)


def llama_wheel() -> Path:
    """Build llama-cpp-python once per machine and set of build flags, into a folder of
    its own (about 10 minutes on 2 cores; then seconds). The flags are portable: with
    `-march=native`, llama.cpp uses every instruction the CPU lists, and a virtual
    machine may list AMX without enabling it (the server then dies of SIGILL at its
    first answer). `CMAKE_ARGS` in the environment overrides them."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        default = ("-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON "
                   "-DGGML_F16C=ON -DGGML_BMI2=ON")
    else:
        default = "-DGGML_NATIVE=OFF"
    args = os.environ.get("CMAKE_ARGS", default)
    pin = re.search(r'"(llama-cpp-python)\[server\](==[^"]+)"',
                    (ROOT / "pyproject.toml").read_text())
    if pin is None:
        raise SystemExit("pyproject.toml's real-llm extra names no llama-cpp-python pin")
    llama_cpp = pin.group(1) + pin.group(2)
    key = hashlib.sha256(f"{llama_cpp} {args} {sys.version_info[:2]}".encode()).hexdigest()
    folder = Path.home() / ".cache" / "pandas-llm-annotate" / "llama-wheels" / key[:16]
    if any(folder.glob("llama_cpp_python-*.whl")):
        return folder
    print(f"real-llm: building {llama_cpp} with CMAKE_ARGS={args!r} (about 10 minutes on "
          "2 cores, once per machine)", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CMAKE_ARGS": args,
           "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1)}
    cmd = [str(PY), "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir",
           "-w", str(folder), llama_cpp]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True, env=env)
    return folder


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
            sh(env_py, "scripts/check_imports.py")  # no import cycle, layers respected
            sh(env_py, "-m", "pytest", *(rest or ["-q"]))
        else:
            sh(env_py, "benchmarks/run.py", *rest)
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
