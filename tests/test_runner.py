"""Running the async core from sync code and from a running loop; sync/async parity;
settings resolution; the progress bar."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers.expected import sim_answer

import pandas_llm_annotate as pla
from pandas_llm_annotate import api, sync
from pandas_llm_annotate.config import OPENAI_BASE_URL, Settings, resolve
from pandas_llm_annotate.simulator import SimulatorHandle

LABELS = ["card_lost", "card_arrival", "refund", "other"]
TEXTS = ["I lost my card", "when is my card arrival", "refund my money please", "hello there",
         "I lost my card", "refund my money please"]


def frame() -> pd.DataFrame:
    return pd.DataFrame({"text": TEXTS}, index=[f"r{i}" for i in range(len(TEXTS))])


def expected() -> list[str]:
    return [sim_answer(t, labels=LABELS) for t in TEXTS]


# --- 13. runner -------------------------------------------------------------------------


def test_sync_annotate_inside_a_running_event_loop(fresh_sim: SimulatorHandle,
                                                   opts: dict[str, Any]) -> None:
    df = frame()

    async def main() -> pd.Series:
        asyncio.get_running_loop()  # really inside a loop, as in Jupyter
        return df.llm.annotate("text", labels=LABELS, **opts)

    out = asyncio.run(main())
    assert out.tolist() == expected()
    assert out.index.equals(df.index)
    assert fresh_sim.stats()["requests"] == 4

    async def twice() -> tuple[pd.Series, pd.Series]:
        # Nested twice in the same loop, and the loop still works afterwards.
        first = df.llm.annotate("text", labels=LABELS, **{**opts, "cache": False})
        await asyncio.sleep(0)
        second = df["text"].llm.annotate(labels=LABELS, **{**opts, "cache": False})
        return first, second

    first, second = asyncio.run(twice())
    assert first.tolist() == second.tolist() == expected()


def test_run_in_thread(fresh_sim: SimulatorHandle, opts: dict[str, Any]) -> None:
    df = frame()
    out = sync._run_in_thread(df.llm.aannotate("text", labels=LABELS, **opts))
    assert out.tolist() == expected()

    async def main() -> pd.Series:
        # The fallback for loops nest_asyncio cannot patch: a thread with its own loop.
        return sync._run_in_thread(
            api.aannotate(df["text"], labels=LABELS, **{**opts, "cache": False}))

    assert asyncio.run(main()).tolist() == expected()

    async def boom() -> None:
        raise pla.ConfigError("raised on the worker thread")

    with pytest.raises(pla.ConfigError, match="worker thread"):
        sync._run_in_thread(boom())


@pytest.mark.parametrize("kind", ["dataframe", "series", "function"])
def test_sync_async_parity(kind: str, fresh_sim: SimulatorHandle,
                           opts: dict[str, Any]) -> None:
    df = frame()
    no_cache = {**opts, "cache": False}
    if kind == "dataframe":
        sync = df.llm.annotate("text", labels=LABELS, **no_cache)
        sync_report = pla.last_report()
        asynced = asyncio.run(df.llm.aannotate("text", labels=LABELS, **no_cache))
    elif kind == "series":
        sync = df["text"].llm.annotate(labels=LABELS, **no_cache)
        sync_report = pla.last_report()
        asynced = asyncio.run(df["text"].llm.aannotate(labels=LABELS, **no_cache))
    else:
        sync = pla.annotate(df["text"], labels=LABELS, **no_cache)
        sync_report = pla.last_report()
        asynced = asyncio.run(pla.aannotate(df["text"], labels=LABELS, **no_cache))
    async_report = pla.last_report()
    pd.testing.assert_series_equal(asynced, sync)
    assert sync.tolist() == expected()
    assert sync_report is not None and async_report is not None
    assert sync_report.requests == async_report.requests == 4
    assert fresh_sim.stats()["requests"] == 8


def test_concurrent_async_runs_in_one_loop(fresh_sim: SimulatorHandle,
                                           opts: dict[str, Any]) -> None:
    df = pd.DataFrame({"a": [f"I lost my card {i}" for i in range(30)],
                       "b": [f"refund my money {i}" for i in range(30)]})

    async def main() -> list[pd.Series]:
        return list(await asyncio.gather(
            df.llm.aannotate("a", labels=LABELS, **opts),
            df.llm.aannotate("b", labels=LABELS, **opts),
            df.llm.aannotate("a", "Which intent?", labels=LABELS, **opts),
        ))

    a, b, a2 = asyncio.run(main())
    assert a.tolist() == [sim_answer(t, labels=LABELS) for t in df["a"]]
    assert b.tolist() == [sim_answer(t, labels=LABELS) for t in df["b"]]
    assert a2.tolist() == [sim_answer(t, "Which intent?", LABELS) for t in df["a"]]
    assert fresh_sim.stats()["requests"] == 90


# --- 9. settings resolution -------------------------------------------------------------


def test_settings_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    default = Settings()
    assert resolve() == default
    assert resolve().model is None
    assert resolve().base_url == OPENAI_BASE_URL

    monkeypatch.setenv("LLM_ANNOTATE_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.invalid/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    s = resolve()
    assert (s.model, s.base_url, s.api_key) == ("env-model", "http://env.invalid/v1", "env-key")

    pla.configure(model="configured-model", api_key="configured-key", max_retries=2)
    s = resolve()
    assert (s.model, s.api_key, s.max_retries) == ("configured-model", "configured-key", 2)
    assert s.base_url == "http://env.invalid/v1"  # not configured: the env var still counts

    s = resolve(model="call-model", max_retries=5, timeout=3.0)
    assert (s.model, s.max_retries, s.timeout) == ("call-model", 5, 3.0)
    assert s.api_key == "configured-key"
    assert resolve(model=None).model == "configured-model"  # None means "not given"

    pla.configure(model=None)  # forget it: back to the env var
    assert resolve().model == "env-model"
    monkeypatch.delenv("LLM_ANNOTATE_MODEL")
    assert resolve().model is None
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert resolve().base_url == OPENAI_BASE_URL
    # Settings that no env var covers fall back to the dataclass defaults.
    for f in dataclasses.fields(Settings):
        if f.name not in ("api_key", "max_retries"):
            assert getattr(resolve(), f.name) == f.default, f.name


def test_call_arguments_reach_the_run(fresh_sim: SimulatorHandle, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # The whole chain, end to end: env var model, configured base_url, call-level cache.
    monkeypatch.setenv("LLM_ANNOTATE_MODEL", "env-model")
    pla.configure(base_url=fresh_sim.base_url, progress=False)
    out = pd.Series(["I lost my card"]).llm.annotate(labels=LABELS, cache=tmp_path / "c")
    assert out.tolist() == [sim_answer("I lost my card", labels=LABELS)]
    assert (tmp_path / "c" / "answers.sqlite").exists()
    assert fresh_sim.stats()["requests"] == 1


@pytest.mark.parametrize(
    ("call", "wrong", "suggestion"),
    [
        ("configure", "modle", "model"),
        ("resolve", "max_concurency", "max_concurrency"),
        ("annotate", "temprature", "temperature"),
        ("annotate", "base_uri", "base_url"),
    ],
)
def test_unknown_setting_names_raise_type_error_with_a_suggestion(
    call: str, wrong: str, suggestion: str, fresh_sim: SimulatorHandle
) -> None:
    kwargs: dict[str, Any] = {wrong: 1}
    with pytest.raises(TypeError, match=f"Did you mean '{suggestion}'") as info:
        if call == "configure":
            pla.configure(**kwargs)
        elif call == "resolve":
            resolve(**kwargs)
        else:
            pd.Series(["x"]).llm.annotate(model="m", base_url=fresh_sim.base_url,
                                          progress=False, **kwargs)
    assert repr(wrong) in str(info.value)
    assert fresh_sim.stats()["requests"] == 0
    assert pla.config._configured == {}


@pytest.mark.parametrize(
    "bad",
    [{"max_concurrency": 0}, {"timeout": 0}, {"max_retries": -1}, {"base_url": "localhost:8000"},
     {"progress": "yes"}, {"max_tokens": 0}],
)
def test_bad_setting_values_are_config_errors(bad: dict[str, Any],
                                              fresh_sim: SimulatorHandle) -> None:
    kwargs = {"model": "m", "base_url": fresh_sim.base_url, "progress": False, **bad}
    with pytest.raises(pla.ConfigError):
        pd.Series(["x"]).llm.annotate(**kwargs)
    assert fresh_sim.stats()["requests"] == 0


# --- progress -------------------------------------------------------------------------


def test_progress_bar_when_asked_and_silence_otherwise(
    fresh_sim: SimulatorHandle, opts: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    df = pd.DataFrame({"text": [f"I lost my card {i}" for i in range(20)] * 2})
    df.llm.annotate("text", labels=LABELS, **{**opts, "progress": True})
    err = capsys.readouterr().err
    assert err.count("annotate finished in") == 1
    assert "\n  40 rows · " in err  # the final block: all 40 rows done

    for quiet in (False, "auto"):  # "auto" draws nothing when stderr is not a terminal
        df.llm.annotate("text", labels=LABELS, **{**opts, "progress": quiet})
        captured = capsys.readouterr()
        assert captured.err == ""
        assert captured.out == ""
