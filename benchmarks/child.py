"""Run one contender in a fresh child process with an offline, loopback-only environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.protocol import Result, Spec, parse_result

ROOT = Path(__file__).resolve().parent.parent

# Nothing in a child may reach past the simulator: no hub downloads, no cost-map fetch,
# no telemetry, no proxy for loopback.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "PYTHONUNBUFFERED": "1",
}
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class ContenderError(RuntimeError):
    """The child failed, timed out or printed no result."""


@dataclass(frozen=True)
class Child:
    result: Result
    stderr_tail: str
    refused: list[str]  # outbound attempts the guard refused (see guard/sitecustomize.py)


def child_env(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.update(OFFLINE_ENV)
    env["OPENAI_BASE_URL"] = base_url
    env["OPENAI_API_BASE"] = base_url
    env["OPENAI_API_KEY"] = "sk-simulator"
    paths = (str(ROOT / "benchmarks" / "guard"), str(ROOT), env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def run_contender(module: str, spec: Spec, *, python: str | Path | None = None,
                  timeout_s: float = 900.0) -> Child:
    """Start ``python -m benchmarks.contenders.<module> SPEC`` and return its result."""
    with tempfile.TemporaryDirectory(prefix="bench-spec-") as tmp:
        guard_log = Path(tmp) / "guard.log"
        env = child_env(spec["base_url"])
        env["BENCH_GUARD_LOG"] = str(guard_log)
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        with (Path(tmp) / "stderr").open("w+") as err:
            cmd = [str(python or sys.executable), "-m", f"benchmarks.contenders.{module}",
                   str(spec_path)]
            try:
                proc = subprocess.run(
                    cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise ContenderError(f"timed out after {timeout_s:.0f} s") from None
            err.seek(0)
            tail = err.read()[-3000:]
        refused = guard_log.read_text().splitlines() if guard_log.exists() else []
    result = parse_result(proc.stdout)
    if proc.returncode != 0 or result is None:
        last = tail.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        raise ContenderError(f"exit {proc.returncode}: {last[0][:200]}")
    return Child(result=result, stderr_tail=tail, refused=refused)
