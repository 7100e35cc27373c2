"""The persistent answer cache: where it lives, its file mode, and what its keys cover."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers.expected import varied_text

import pandas_llm_annotate as pla
from pandas_llm_annotate.simulator import SimulatorHandle, serve

# Answers in the cache: merged ones and those a run appended and has not merged yet.
CACHED_ROWS = "SELECT count(*) FROM (SELECT key FROM answers UNION SELECT key FROM pending)"

LABELS = ["card_lost", "card_arrival", "refund", "other"]


def frame(n: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"my card is lost, ticket {i}" for i in range(n)] * 2})


def requests_made() -> int:
    rep = pla.last_report()
    assert rep is not None
    return rep.requests


def cached_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(CACHED_ROWS).fetchone()[0])


def sqlite_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if ".sqlite" in p.name) if root.exists() else []


def test_cache_file_is_private(opts: dict[str, Any], cache_dir: Path) -> None:
    frame().llm.annotate("text", labels=LABELS, **opts)
    path = cache_dir / "answers.sqlite"
    assert path.exists()
    assert cached_rows(path) == 10
    files = sqlite_files(cache_dir)
    assert path in files
    for f in files:  # the database and its WAL/SHM companions alike
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_existing_cache_file_is_made_private(opts: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "shared" / "answers.sqlite"
    target.parent.mkdir()
    target.touch(mode=0o644)
    target.chmod(0o644)
    frame().llm.annotate("text", labels=LABELS, **{**opts, "cache": target.parent})
    assert cached_rows(target) == 10
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_cache_false_writes_nothing_and_asks_again(fresh_sim: SimulatorHandle,
                                                   opts: dict[str, Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    no_cache = {**opts, "cache": False}
    frame().llm.annotate("text", labels=LABELS, **no_cache)
    frame().llm.annotate("text", labels=LABELS, **no_cache)
    assert requests_made() == 10
    assert fresh_sim.stats()["requests"] == 20
    assert sqlite_files(tmp_path) == []


def test_cache_path_argument_relative_dir(fresh_sim: SimulatorHandle, opts: dict[str, Any],
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    here = {**opts, "cache": "some/dir"}
    first = frame().llm.annotate("text", labels=LABELS, **here)
    assert cached_rows(tmp_path / "some" / "dir" / "answers.sqlite") == 10
    second = frame().llm.annotate("text", labels=LABELS, **here)
    assert requests_made() == 0
    pd.testing.assert_series_equal(first, second)
    assert fresh_sim.stats()["requests"] == 10
    assert [p.parent for p in sqlite_files(tmp_path)] == [tmp_path / "some" / "dir"] * len(
        sqlite_files(tmp_path))


def test_cache_file_path_argument(opts: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "mine.sqlite"
    frame().llm.annotate("text", labels=LABELS, **{**opts, "cache": target})
    assert cached_rows(target) == 10


def test_default_cache_is_the_user_cache_dir_or_the_env_var(
    fresh_sim: SimulatorHandle, opts: dict[str, Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = {**opts, "cache": True}
    frame().llm.annotate("text", labels=LABELS, **default)
    xdg = sqlite_files(tmp_path / "xdg-cache")  # conftest points the user cache dir here
    assert [p.name for p in xdg if p.name.endswith(".sqlite")] == ["answers.sqlite"]

    env_dir = tmp_path / "from-env"
    monkeypatch.setenv("LLM_ANNOTATE_CACHE_DIR", str(env_dir))
    frame().llm.annotate("text", labels=LABELS, **default)
    assert requests_made() == 10  # a new, empty cache
    assert cached_rows(env_dir / "answers.sqlite") == 10
    frame().llm.annotate("text", labels=LABELS, **default)
    assert requests_made() == 0

    monkeypatch.delenv("LLM_ANNOTATE_CACHE_DIR")
    pla.configure(cache=tmp_path / "configured")
    frame().llm.annotate("text", labels=LABELS, model="sim-model", base_url=fresh_sim.base_url,
                         progress=False)
    assert cached_rows(tmp_path / "configured" / "answers.sqlite") == 10
    assert fresh_sim.stats()["requests"] == 30


BASE: dict[str, Any] = {"prompt": "Which intent is this?", "labels": LABELS}


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "Which banking intent is this?"},
        {"prompt": None},
        {"labels": [*LABELS, "fraud"]},
        {"labels": ["other", "refund", "card_arrival", "card_lost"]},
        {"labels": None},
        {"model": "another-model"},
        {"temperature": 0.7},
        {"max_tokens": 99},
        {"cache_namespace": "another-server"},
    ],
    ids=lambda change: "-".join(f"{k}={v}"[:30] for k, v in change.items()),
)
def test_anything_that_changes_the_answer_changes_the_key(
    change: dict[str, Any], fresh_sim: SimulatorHandle, opts: dict[str, Any]
) -> None:
    df = frame()

    def run(**over: Any) -> pd.Series:
        args = {**opts, **BASE, **over}
        return df.llm.annotate("text", args.pop("prompt"), labels=args.pop("labels"), **args)

    run()
    assert requests_made() == 10
    run()
    assert requests_made() == 0

    run(**change)
    assert requests_made() == 10
    run(**change)
    assert requests_made() == 0
    run()  # the original answers are still there
    assert requests_made() == 0
    assert fresh_sim.stats()["requests"] == 20


def test_a_local_server_on_another_port_shares_the_cache(fresh_sim: SimulatorHandle,
                                                         opts: dict[str, Any]) -> None:
    frame().llm.annotate("text", labels=LABELS, **opts)
    with serve(latency=0.01) as other:  # the same model, restarted on a new port
        frame().llm.annotate("text", labels=LABELS, **{**opts, "base_url": other.base_url})
        assert other.stats()["requests"] == 0


def test_api_key_is_not_part_of_the_key(fresh_sim: SimulatorHandle,
                                        opts: dict[str, Any]) -> None:
    frame().llm.annotate("text", labels=LABELS, api_key="key-one", **opts)
    frame().llm.annotate("text", labels=LABELS, api_key="key-two", **opts)
    assert requests_made() == 0
    assert fresh_sim.stats()["requests"] == 10


def test_chunked_cells_are_cached_too(fresh_sim: SimulatorHandle, opts: dict[str, Any]) -> None:
    df = pd.DataFrame({"text": [varied_text(50_000), varied_text(30_000, seed=5), "short"]})
    first = df.llm.annotate("text", labels=LABELS, **opts)
    rep = pla.last_report()
    assert rep is not None and rep.chunks > rep.distinct
    second = df.llm.annotate("text", labels=LABELS, **opts)
    assert requests_made() == 0
    pd.testing.assert_series_equal(first, second)
    assert fresh_sim.stats()["requests"] == rep.requests
