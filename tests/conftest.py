"""Shared fixtures: isolated settings and cache, and one simulator for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pandas_llm_annotate.config as pla_config
from pandas_llm_annotate.llamacpp import MODELS_DIR_ENV, models_dir
from pandas_llm_annotate.ratelimit import registry
from pandas_llm_annotate.simulator import SimulatorHandle, serve

ENV_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLM_ANNOTATE_MODEL", "LLM_ANNOTATE_CACHE_DIR")
MODELS_DIR = str(models_dir())  # where `fetch` put the real model: read before the move below


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No settings leak between tests, and nothing touches the real user cache.

    `configure(...)` state and the limiters learned per server are cleared (a later
    simulator may get an earlier one's port: it must not inherit what that one showed,
    e.g. a cap from queueing), the package's env vars are removed and the
    default cache directory (platformdirs honours XDG_CACHE_HOME) is under tmp_path;
    only the llama.cpp model folder stays where it was (the real_llm tests need it).
    """
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv(MODELS_DIR_ENV, MODELS_DIR)
    pla_config._configured.clear()
    registry._shared.clear()  # a server's limits are learned per process: not per test
    yield
    pla_config._configured.clear()
    registry._shared.clear()


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorHandle]:
    """One simulator for the session: small latency, no limits, no faults."""
    with serve(latency=0.02, jitter=0.25, seed=7) as handle:
        yield handle


@pytest.fixture
def fresh_sim(sim: SimulatorHandle) -> SimulatorHandle:
    """The session simulator with zeroed counters."""
    sim.reset_stats()
    return sim


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def opts(fresh_sim: SimulatorHandle, cache_dir: Path) -> dict[str, Any]:
    """Options for a quiet run against the session simulator with a private cache."""
    return {
        "model": "sim-model",
        "base_url": fresh_sim.base_url,
        "cache": str(cache_dir),
        "progress": False,
    }
