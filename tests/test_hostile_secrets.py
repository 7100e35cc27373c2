"""Hostile servers on 127.0.0.1 and careless settings: URL credentials and an echoed
API key never show, a key read from a file works, a redirect is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiohttp import web
from helpers.checks import closed_port, error_text, report
from helpers.expected import SECRET
from helpers.local_server import LocalServer, completion, user_text

import pandas_llm_annotate as pla

LABELS = ["card_lost", "refund", "other"]


# --- URL credentials and an echoed key never show (issue 12, point 8) ---------------------

PASSWORD = "hunter2-url-password"


def report_text(rep: pla.Report) -> str:
    return "\n".join([rep.message, repr(rep), rep._repr_html_(), json.dumps(rep.to_dict()),
                      rep.failures.to_string()])


def with_password(base_url: str) -> str:
    return base_url.replace("http://", f"http://alice:{PASSWORD}@")


def _status(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status)


def test_url_credentials_never_show(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []
    df = pd.DataFrame({"text": ["a", "b"]})
    with LocalServer(lambda body: _status(500, "down")) as server:
        url = with_password(server.base_url)
        seen.append(repr(pla.configure(model="m", base_url=url)))
        pla.configure(model=None, base_url=None)
        out = df.llm.annotate("text", model="m", base_url=url, max_retries=0, cache=tmp_path,
                              progress=True)
        assert out.isna().all()
        assert server.headers[0]["Authorization"].startswith("Basic ")  # the password was used
        seen.append(report_text(report()))
    assert "http://***@127.0.0.1" in report().failures["error"].iloc[0]
    with LocalServer(lambda body: _status(404, "no such model")) as server:
        with pytest.raises(pla.NotFoundError) as info:
            df.llm.annotate("text", model="m", base_url=with_password(server.base_url),
                            cache=tmp_path, progress=True)
        seen += [error_text(info.value), report_text(report())]
    with pytest.raises(pla.ConnectError) as connect:
        df.llm.annotate("text", model="m", cache=tmp_path, progress=True,
                        base_url=with_password(f"http://127.0.0.1:{closed_port()}/v1"))
    seen += [error_text(connect.value), report_text(report())]
    progress = capfd.readouterr().err
    assert progress.count("annotate") >= 3 and "***@127.0.0.1" in progress
    seen.append(progress)
    for text in seen:
        assert PASSWORD not in text


def test_url_credentials_and_an_api_key_are_a_config_error() -> None:
    url = with_password(f"http://127.0.0.1:{closed_port()}/v1")
    with pytest.raises(pla.ConfigError) as info:
        pd.Series(["a"]).llm.annotate(model="m", base_url=url, api_key=SECRET, progress=False)
    message = str(info.value)
    assert "base_url" in message and "api_key" in message
    assert PASSWORD not in error_text(info.value)
    assert SECRET not in error_text(info.value)


def _echo(body: dict[str, Any]) -> web.Response:
    text = user_text(body)
    if text == "unauthorized":
        return _status(401, f"Incorrect API key provided: {SECRET}.")
    if text == "busy":
        return _status(500, f"busy serving {SECRET}")
    return web.Response(text=f"not json, and your key is {SECRET}")


def test_a_key_echoed_by_the_server_is_redacted(tmp_path: Path) -> None:
    with LocalServer(_echo) as server:
        pd.Series(["busy", "garbled"]).llm.annotate(
            model="m", base_url=server.base_url, api_key=SECRET, max_retries=0, cache=tmp_path,
            progress=False)
        rep = report()
        assert server.headers[0]["Authorization"] == f"Bearer {SECRET}"
        with pytest.raises(pla.AuthenticationError) as info:
            pd.Series(["unauthorized"]).llm.annotate(
                model="m", base_url=server.base_url, api_key=SECRET, cache=tmp_path,
                progress=False)
    assert rep.failed == 2
    assert "***" in rep.failures["error"].iloc[0]
    assert "Incorrect API key provided: ***" in str(info.value)
    for text in (report_text(rep), report_text(report()), error_text(info.value),
                 info.value.body):
        assert SECRET not in text


# --- a key read from a file, redirects (issue 12, point 9) --------------------------------


def test_a_key_with_surrounding_whitespace_is_stripped(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalServer(lambda body: "refund") as server:
        out = pd.Series(["a"]).llm.annotate(model="m", base_url=server.base_url,
                                            api_key=f"  {SECRET}\n", cache=False, progress=False)
        monkeypatch.setenv("OPENAI_API_KEY", f"{SECRET}\r\n")
        again = pd.Series(["b"]).llm.annotate(model="m", base_url=server.base_url,
                                              cache=False, progress=False)
        sent = [h["Authorization"] for h in server.headers]
    assert out.tolist() == again.tolist() == ["refund"]
    assert sent == [f"Bearer {SECRET}"] * 2


@pytest.mark.parametrize("key", [f"{SECRET[:6]}\n{SECRET[6:]}", f"{SECRET} extra",
                                 f"\u201c{SECRET}\u201d"], ids=["newline", "space", "quotes"])
def test_a_key_with_inner_control_characters_is_a_config_error(key: str) -> None:
    with LocalServer(lambda body: "refund") as server:
        with pytest.raises(pla.ConfigError) as info:
            pd.Series(["a"]).llm.annotate(model="m", base_url=server.base_url, api_key=key,
                                          cache=False, progress=False)
        assert server.requests == 0
    assert "api_key" in str(info.value)
    assert SECRET not in error_text(info.value)
    assert SECRET[6:] not in error_text(info.value)


async def _get_answer(request: web.Request) -> web.StreamResponse:
    """What a GET to the redirect's target answers: a plausible completion."""
    return web.json_response(completion("refund"))


@pytest.mark.parametrize(("status", "password"),
                         [(301, False), (302, False), (307, False), (308, False), (302, True)])
def test_a_redirect_is_refused_naming_the_location(tmp_path: Path, status: int,
                                                   password: bool) -> None:
    def moved(body: dict[str, Any]) -> web.Response:
        return web.Response(status=status, headers={"Location": location})

    with LocalServer(moved, get=_get_answer) as server:
        target = with_password(server.base_url) if password else server.base_url
        location = f"{target}/v2/chat/completions?key={SECRET}"
        with pytest.raises(pla.AnnotateError) as info:
            pd.DataFrame({"text": ["a", "b", "c"]}).llm.annotate(
                "text", labels=LABELS, model="m", base_url=server.base_url, api_key=SECRET,
                max_concurrency=1, cache=tmp_path, progress=False)
        gets, posts = server.gets, server.requests
    assert (gets, posts) == (0, 1)  # nothing followed, the run stopped at the first
    message = str(info.value)
    assert f"HTTP {status}" in message
    shown = server.base_url.replace("http://", "http://***@") if password else server.base_url
    assert f"{shown}/v2/chat/completions" in message  # the Location
    assert "base_url" in message
    assert SECRET not in error_text(info.value) and PASSWORD not in error_text(info.value)
    assert report().status == "failed"
