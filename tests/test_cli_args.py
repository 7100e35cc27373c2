"""The command line's flags: one per field of `Settings` (or deliberately none), each
reaching its setting; the API key never a flag; the help; the console script."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys

import pytest
from helpers.child import ROOT, child_env

from pandas_llm_annotate import cli
from pandas_llm_annotate.cli.args import EXCLUDED, HELP, _kwargs, build_parser, flag
from pandas_llm_annotate.config import Settings, resolve


def test_flag_errors_are_argparse_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["annotate", "d.csv", "-c", "t", "-o", "o.csv", "--api-key", "sk-secret"],
                 ["annotate", "d.csv", "-c", "t", "-o", "o.csv", "--rows-per-request", "0"]):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --api-key" in err
    assert "--rows-per-request: expected a whole number >= 1 or 'auto'" in err


def test_help_says_where_the_key_comes_from(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["annotate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "The API key is read from $OPENAI_API_KEY, never from a flag" in text
    assert "Exit codes: 0 done" in text and "130 interrupted" in text


def test_every_setting_has_a_flag_or_is_deliberately_excluded() -> None:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["annotate"]  # type: ignore[union-attr]
    flags = {s for action in sub._actions for s in action.option_strings}
    for field in dataclasses.fields(Settings):
        assert (field.name in EXCLUDED) != (flag(field.name) in flags), field.name
        assert field.name in EXCLUDED or field.name in HELP
    with pytest.raises(TypeError, match="has no command-line flag"):
        _kwargs("new_setting", dict[str, int])


def test_each_flag_reaches_its_setting() -> None:
    argv = ["annotate", "d.csv", "-c", "t", "-o", "o.csv", "--model", "m", "--base-url",
            "http://127.0.0.1:9/v1", "--max-concurrency", "3", "--max-retries", "1",
            "--timeout", "9.5", "--temperature", "0.5", "--max-tokens", "20",
            "--max-chunk-tokens", "300", "--cache", "some/dir", "--stream", "--no-progress",
            "--rpm", "100", "--tpm", "9000", "--rows-per-request", "auto", "--no-structured",
            "--semantic", "0.97", "--embedder", "my-model", "--max-response-bytes", "1000",
            "--cache-namespace", "farm", "--price", "0.15", "0.6", "--max-wait", "30",
            "--max-cost", "2.5", "--no-batch", "--batch-fallback", "online",
            "--batch-poll-s", "2"]
    given = cli.settings_given(build_parser().parse_args(argv))
    settings = resolve(**given).check()
    assert {f.name for f in dataclasses.fields(Settings)} - set(given) == set(EXCLUDED)
    assert (settings.max_concurrency, settings.timeout, settings.rows_per_request) == (3, 9.5,
                                                                                      "auto")
    assert (settings.max_response_bytes, settings.cache_namespace) == (1000, "farm")
    assert settings.max_wait == 30 and settings.max_cost == 2.5
    assert (settings.batch, settings.batch_fallback, settings.batch_poll_s) == (False, "online", 2)
    assert tuple(settings.price or ()) == (0.15, 0.6)
    assert (settings.stream, settings.progress, settings.structured) == (True, False, False)
    assert (settings.semantic, settings.cache, settings.rpm) == (0.97, "some/dir", 100)
    semantic = build_parser().parse_args([*argv[:6], "--semantic", "--no-cache"])
    assert (semantic.semantic, semantic.cache) == (True, False)


def test_the_console_script_is_the_command_line() -> None:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["pandas-llm-annotate"].partition(":")
    assert getattr(importlib.import_module(module), name) is cli.run
    done = subprocess.run([sys.executable, "-m", "pandas_llm_annotate", "--version"],
                          capture_output=True, text=True, env=child_env(),
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("pandas-llm-annotate 0.")
