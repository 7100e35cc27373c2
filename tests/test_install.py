"""The README's install section, followed verbatim in a fresh venv, and a wheel built
with `python -m build` installed in another: both run the demo from the installed
package. Slow (fresh venvs fill from pip's cache): marked `install`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.install, pytest.mark.slow, pytest.mark.timeout(900)]


def install_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- install.*?-->\s*```bash\n(.*?)```\s*<!-- /install -->", readme, re.S)
    assert block, "README.md has no install block between <!-- install --> markers"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines()
            if line.split("#")[0].strip()]


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=840)


def demo(python: Path, cwd: Path) -> str:
    done = subprocess.run([str(python), "-m", "pandas_llm_annotate.demo", "--latency", "0.01"],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_readme_install_section_works_in_a_fresh_venv(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git clone: the README's first line clones the repository")
    lines = install_lines()
    assert lines[0].startswith("git clone <this repository> pandas-llm-annotate")
    lines[0] = lines[0].replace("<this repository>", str(ROOT))
    done = bash("\n".join(lines), tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    python = tmp_path / "pandas-llm-annotate" / ".venv" / "bin" / "python"
    out = demo(python, tmp_path)  # not the clone's folder: the installed package
    assert "first run" in out and "rerun (cache)" in out
    check = subprocess.run([str(python), "-c", "import ipywidgets, matplotlib"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # the notebook extra


def test_a_built_wheel_installs_and_runs_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist),
                            str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("pandas_llm_annotate-*.whl")
    done = bash(f"python3 -m venv venv && venv/bin/pip install -q '{wheel}'", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = demo(tmp_path / "venv" / "bin" / "python", tmp_path)
    assert "server saw:" in out
