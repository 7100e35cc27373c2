"""The LOTUS contender's own venv: LOTUS needs pandas < 3, numpy < 2 and Python < 3.13.

Installed lazily under ``.bench-venvs/lotus`` with ``pip -c constraints.txt`` so that
torch (pulled in by sentence-transformers) stays the local CPU build. Can also be run
by hand: ``python benchmarks/lotus_env.py`` installs and prints the venv's python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench-venvs" / "lotus"
PY = VENV / "bin" / "python"
MARKER = VENV / ".installed-lotus-ai-1.2.4"
LOG = VENV / "install.log"
REQUIREMENTS = ("lotus-ai==1.2.4", "pandas<3", "numpy<2")
INSTALL_TIMEOUT_S = 1800.0


def base_python() -> str:
    """A Python < 3.13 to build the venv from (the dev venv's python usually is one)."""
    if sys.version_info < (3, 13):
        return sys.executable
    for name in ("python3.11", "python3.12", "python3.10"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("LOTUS needs Python < 3.13 and none was found")


def ensure(timeout_s: float = INSTALL_TIMEOUT_S) -> Path:
    """Return the venv's python, installing LOTUS first if needed; raise RuntimeError
    with a short reason when that fails or takes longer than ``timeout_s``."""
    if MARKER.exists() and PY.exists():
        return PY
    VENV.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if not PY.exists():
        _run([base_python(), "-m", "venv", str(VENV)], env, timeout_s)
    left = max(1.0, timeout_s - (time.monotonic() - start))
    _run(
        [str(PY), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
         *REQUIREMENTS],
        env, left,
    )
    MARKER.write_text("ok\n")
    return PY


def _run(cmd: list[str], env: dict[str, str], timeout_s: float) -> None:
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as log:
        log.write("+ " + " ".join(cmd) + "\n")
        log.flush()
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"install timed out after {timeout_s:.0f} s (log: {LOG})") from None
    if proc.returncode != 0:
        tail = LOG.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"install failed ({tail[0][:160]}; log: {LOG})")


if __name__ == "__main__":
    print(ensure())
