"""Errors: a wrong key, an unknown model, an unreachable server, broken answers, a
missing model or column; and the API key never showing anywhere."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiohttp import web
from helpers.checks import closed_port, error_text, report
from helpers.expected import SECRET, sim_answer
from helpers.local_server import LocalServer, user_text

import pandas_llm_annotate as pla
from pandas_llm_annotate.config import resolve
from pandas_llm_annotate.simulator import SimulatorHandle, serve

LABELS = ["card_lost", "card_arrival", "refund", "other"]


def texts(n: int) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"I lost my card, case {i}" for i in range(n)]})


# --- 7. a wrong key ------------------------------------------------------------------


def test_wrong_key_stops_the_run_at_once_with_one_clear_error(tmp_path: Path) -> None:
    with serve(latency=0.01, api_key="right") as sim:
        start = time.monotonic()
        with pytest.raises(pla.AuthenticationError) as info:
            texts(50).llm.annotate("text", labels=LABELS, model="m", base_url=sim.base_url,
                                   api_key=SECRET, max_concurrency=4, max_retries=6,
                                   cache=tmp_path / "c", progress=False)
        elapsed = time.monotonic() - start
        stats = sim.stats()
    # Six retries with backoff would take several seconds; a fatal error takes none.
    assert elapsed < 1.5
    assert 1 <= stats["requests"] <= 4
    assert stats["unauthorized"] == stats["requests"]
    exc = info.value
    assert type(exc) is pla.AuthenticationError
    assert exc.status == 401
    message = str(exc)
    assert "API key" in message
    assert "OPENAI_API_KEY" in message or "api_key" in message
    assert SECRET not in error_text(exc)
    assert "right" not in message
    rep = report()
    assert rep.status == "failed"
    assert rep.requests <= 4
    assert SECRET not in json.dumps(rep.to_dict())


# --- 8. wrong model, wrong URL, unreachable server, broken answers ---------------------


def test_unknown_model_is_not_found_with_advice(tmp_path: Path) -> None:
    with serve(latency=0.01, models=["real-model"]) as sim:
        start = time.monotonic()
        with pytest.raises(pla.NotFoundError) as info:
            texts(30).llm.annotate("text", labels=LABELS, model="no-such-model",
                                   base_url=sim.base_url, api_key=SECRET, max_concurrency=4,
                                   cache=tmp_path / "c", progress=False)
        elapsed = time.monotonic() - start
        stats = sim.stats()
    assert elapsed < 1.5
    assert stats["not_found"] == stats["requests"] <= 4
    message = str(info.value)
    assert info.value.status == 404
    assert "model" in message
    assert "base_url" in message
    assert SECRET not in error_text(info.value)
    assert report().status == "failed"


def test_base_url_without_api_root_is_not_found(tmp_path: Path, sim: SimulatorHandle) -> None:
    with pytest.raises(pla.NotFoundError) as info:
        texts(3).llm.annotate("text", model="m", base_url=sim.url, api_key=SECRET,
                              cache=tmp_path / "c", progress=False)
    assert "/v1" in str(info.value)
    assert SECRET not in error_text(info.value)


def test_unreachable_server_fails_fast_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    start = time.monotonic()
    with pytest.raises(pla.ConnectError) as info:
        texts(20).llm.annotate("text", labels=LABELS, model="m", base_url=url, api_key=SECRET,
                               max_retries=6, cache=tmp_path / "c", progress=False)
    assert time.monotonic() - start < 2.0
    assert url in str(info.value)
    assert SECRET not in error_text(info.value)
    assert report().status == "failed"


def _broken(body: dict[str, Any]) -> str | web.Response:
    text = user_text(body)
    if text == "html":
        return web.Response(text="<html><body>Bad gateway, try later</body></html>",
                            content_type="text/html")
    if text == "no choices":
        return web.json_response({"object": "chat.completion", "choices": []})
    if text == "truncated":
        return web.Response(body=b'{"choices": [{"message": {"content": "ref',
                            content_type="application/json")
    return sim_answer(text, labels=LABELS)


def test_malformed_answers_fail_after_retries_and_the_run_finishes(tmp_path: Path) -> None:
    good = ["I lost my card", "refund my money please"]
    bad = ["html", "no choices", "truncated"]
    df = pd.DataFrame({"text": [*good, *bad, "html"]}, index=list("abcdef"))
    with LocalServer(_broken) as server:
        out = df.llm.annotate("text", labels=LABELS, model="local", base_url=server.base_url,
                              max_retries=2, cache=tmp_path / "c", progress=False)
        asked = server.texts()
    rep = report()
    assert out[["a", "b"]].tolist() == [sim_answer(t, labels=LABELS) for t in good]
    assert out[["c", "d", "e", "f"]].isna().all()
    assert rep.status == "finished"
    assert rep.failed == 4
    assert sorted(rep.failures["index"]) == ["c", "d", "e", "f"]
    assert rep.failures["error"].str.len().min() > 0
    assert rep.failures["raw_answer"].isna().all()
    assert {t: asked[t] for t in bad} == dict.fromkeys(bad, 3)  # 1 try + 2 retries each
    assert {t: asked[t] for t in good} == dict.fromkeys(good, 1)
    assert rep.retries == 6


# --- settings and column errors ---------------------------------------------------------


def test_no_model_configured_says_how_to_configure(sim: SimulatorHandle) -> None:
    with pytest.raises(pla.ConfigError) as info:
        texts(2).llm.annotate("text", base_url=sim.base_url, api_key=SECRET, progress=False)
    message = str(info.value)
    assert SECRET not in error_text(info.value)
    assert isinstance(info.value, ValueError)
    assert "configure(" in message
    assert "LLM_ANNOTATE_MODEL" in message
    assert "simulator" in message


def test_openai_without_a_key_is_a_config_error() -> None:
    with pytest.raises(pla.ConfigError, match="OPENAI_API_KEY"):
        texts(2).llm.annotate("text", model="gpt-4o-mini", progress=False)


def test_unknown_column_lists_close_matches(sim: SimulatorHandle) -> None:
    df = pd.DataFrame({"text": ["a"], "label": ["b"], "notes": ["c"]})
    with pytest.raises(pla.ColumnNotFoundError) as info:
        df.llm.annotate("txt", model="m", base_url=sim.base_url, progress=False)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, pla.AnnotateError)
    message = str(info.value)
    assert "'txt'" in message
    assert "Did you mean 'text'" in message
    assert "label" in message  # the columns are listed
    with pytest.raises(KeyError):  # plain `except KeyError` code still works
        df.llm.annotate("Text", model="m", base_url=sim.base_url, progress=False)


def test_every_error_is_an_annotate_error() -> None:
    for name in pla.__all__:
        obj = getattr(pla, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, pla.AnnotateError), name


# --- 10. the key never shows ----------------------------------------------------------


def test_api_key_never_shows(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "cache"
    seen: list[str] = []

    settings = resolve(model="m", api_key=SECRET)
    seen += [repr(settings), str(settings), repr(pla.configure(api_key=SECRET, model="m"))]
    pla.configure(api_key=None, model=None)

    with serve(latency=0.01, api_key=SECRET, models=["m"]) as sim:
        df = texts(20)
        # A run that works proves the key was really sent...
        out = df.llm.annotate("text", labels=LABELS, model="m", base_url=sim.base_url,
                              api_key=SECRET, cache=cache, progress=False, stream=True)
        assert out.notna().all()
        seen.append(json.dumps(report().to_dict()))
        seen.append(repr(report()))
        # ... also from the environment, and the reruns are answered by the cache.
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        df.llm.annotate("text", labels=LABELS, model="m", base_url=sim.base_url, cache=cache,
                        progress=False)
        assert report().cache_hits == 20
        monkeypatch.delenv("OPENAI_API_KEY")

        failing: list[dict[str, Any]] = [
            {"model": "m", "base_url": sim.base_url, "api_key": SECRET + "-wrong"},
            {"model": "unknown", "base_url": sim.base_url, "api_key": SECRET},
            {"model": "m", "base_url": f"http://127.0.0.1:{closed_port()}/v1",
             "api_key": SECRET},
        ]
        for kwargs in failing:
            with pytest.raises(pla.AnnotateError) as info:
                pd.DataFrame({"text": ["never asked before", "nor this"]}).llm.annotate(
                    "text", cache=cache, progress=False, **kwargs)
            seen.append(error_text(info.value))
            seen.append(json.dumps(report().to_dict()))

    with LocalServer(lambda body: web.Response(text="<<not json>>")) as server:
        pd.Series(["x"]).llm.annotate(model="m", base_url=server.base_url, api_key=SECRET,
                                      max_retries=0, cache=cache, progress=False)
        assert server.headers[0]["Authorization"] == f"Bearer {SECRET}"
    rep = report()
    assert rep.failed == 1
    seen.append(json.dumps(rep.to_dict()))
    seen.append(rep.failures.to_string())

    for text in seen:
        assert SECRET not in text
    files = sorted(cache.iterdir())
    assert any(f.name.endswith(".sqlite") for f in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()
