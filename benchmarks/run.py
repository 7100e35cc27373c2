"""Benchmarks: ``python benchmarks/run.py [--quick] [--only NAME,...]`` (or
``python3 dev.py bench``). Scenarios: core, rpm, rpm-noheaders, tpm, overhead, memory.
See ``benchmarks/README.md``."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks.*` importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
