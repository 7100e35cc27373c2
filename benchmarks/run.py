"""Benchmarks: ``python benchmarks/run.py [--quick] [--only NAME,...]`` (or
``python3 dev.py bench``). Scenarios: core, rpm, rpm-noheaders, tpm, queue, overhead,
memory, and scale when named in ``--only``.
See ``benchmarks/README.md``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDS = ("pandas", "aiohttp", "openai", "matplotlib")


def _use_dev_venv() -> None:
    """Outside the dev venv (no pandas/openai/...), re-run with ./.venv's python."""
    if all(importlib.util.find_spec(name) for name in NEEDS):
        return
    venv_py = ROOT / ".venv" / "bin" / "python"
    in_venv = Path(sys.prefix).resolve() == venv_py.parent.parent.resolve()
    if venv_py.exists() and not in_venv:
        print(f"[bench] re-running with {venv_py}", file=sys.stderr, flush=True)
        os.execv(str(venv_py), [str(venv_py), __file__, *sys.argv[1:]])
    missing = [name for name in NEEDS if not importlib.util.find_spec(name)]
    sys.exit(f"missing {', '.join(missing)}: run `python3 dev.py bench` (it installs them)")


if __package__ in (None, ""):  # run as a script: make `benchmarks.*` importable
    sys.path[0] = str(ROOT)
    _use_dev_venv()

from benchmarks.cli import main  # noqa: E402  (needs the sys.path fix above)

if __name__ == "__main__":
    sys.exit(main())
